package bench

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name holds a space and a ')'; utime 250 and stime 50
	// ticks are fields 14 and 15.
	line := "4242 (atoll (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 99 123456 789 18446744073709551615\n"
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("parseStatCPU = %v, want %v", got, want)
	}
	if _, err := parseStatCPU("4242 (atoll) S 1"); err == nil {
		t.Error("short stat line: no error")
	}
}

func TestReadProcStatSelf(t *testing.T) {
	before, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Hold 64 MiB resident and burn CPU; both must show.
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	// Spin until the CPU time shows 50 ms more, or give up after 20 s
	// (on a loaded machine the spinning gets a share of a core).
	x := 0
	var after ProcStat
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		for range 1 << 20 {
			x++
		}
		var err error
		if after, err = ReadProcStat(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after.CPU-before.CPU >= 50*time.Millisecond {
			break
		}
	}
	if after.RSS-before.RSS < 32<<20 {
		t.Errorf("RSS grew %d bytes after touching 64 MiB", after.RSS-before.RSS)
	}
	if after.PeakRSS < after.RSS {
		t.Errorf("PeakRSS %d < RSS %d", after.PeakRSS, after.RSS)
	}
	// The test binary's own code is mapped from its file; the 64 MiB are not.
	if after.FileRSS <= 0 || after.FileRSS > after.RSS-32<<20 {
		t.Errorf("FileRSS %d of RSS %d, want some, and not the anonymous 64 MiB", after.FileRSS, after.RSS)
	}
	if after.CPU-before.CPU < 50*time.Millisecond {
		t.Errorf("CPU grew %v in 20 s of spinning", after.CPU-before.CPU)
	}
	_ = buf[x%len(buf)]
}

func TestSample(t *testing.T) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() { // one core busy for the window
		defer close(done)
		for x := 0; !stop.Load(); x++ {
		}
	}()
	f, err := Sample(context.Background(), os.Getpid(), time.Second)
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if f.Window < time.Second || f.MaxRSS <= 0 {
		t.Errorf("Sample = %+v, want a window of at least 1s and an RSS", f)
	}
	// Other test binaries may share the cores; the spinning still shows.
	if f.Cores() < 0.05 || f.CPU <= 0 {
		t.Errorf("Cores() = %.2f, CPU %v with one goroutine spinning, want up to 1", f.Cores(), f.CPU)
	}
}
