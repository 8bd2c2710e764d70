package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for every architecture's user-space ABI.
const userHZ = 100

// ProcStat is what a process costs at one moment.
type ProcStat struct {
	// RSS is the resident set size, in bytes (VmRSS).
	RSS int64
	// PeakRSS is the highest RSS so far, in bytes (VmHWM).
	PeakRSS int64
	// FileRSS is the part of RSS mapped from files, in bytes (RssFile):
	// mostly the pages of the binary the kernel mapped in.
	FileRSS int64
	// CPU is the user plus system CPU time used so far, every thread
	// counted, exited ones included.
	CPU time.Duration
}

// ReadProcStat reads /proc/PID/status and /proc/PID/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	var s ProcStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read process %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch key {
		case "VmRSS":
			s.RSS, err = parseKB(val)
		case "VmHWM":
			s.PeakRSS, err = parseKB(val)
		case "RssFile":
			s.FileRSS, err = parseKB(val)
		}
		if err != nil {
			return s, fmt.Errorf("process %d: %s: %w", pid, key, err)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read process %d: %w", pid, err)
	}
	s.CPU, err = parseStatCPU(string(stat))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	return s, nil
}

// parseKB parses "  123456 kB".
func parseKB(v string) (int64, error) {
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected value %q", v)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n * 1024, err
}

// parseStatCPU returns utime+stime from a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may hold spaces, so fields are
// counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected stat %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// MB is bytes in mebibytes.
func MB(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// Footprint is what a process cost over a sampling window.
type Footprint struct {
	// MaxRSS is the highest RSS sampled, in bytes.
	MaxRSS int64
	// CPU is the CPU time used during the window.
	CPU time.Duration
	// Window is how long the window lasted.
	Window time.Duration
}

// Cores is the CPU used per second of the window.
func (f Footprint) Cores() float64 {
	if f.Window <= 0 {
		return 0
	}
	return f.CPU.Seconds() / f.Window.Seconds()
}

// Sample reads the process's RSS every 250 ms for window and returns the
// highest, and the CPU time used meanwhile.
func Sample(ctx context.Context, pid int, window time.Duration) (Footprint, error) {
	first, err := ReadProcStat(pid)
	if err != nil {
		return Footprint{}, err
	}
	start := time.Now()
	f := Footprint{MaxRSS: first.RSS}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := first
	for time.Since(start) < window {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-t.C:
		}
		if last, err = ReadProcStat(pid); err != nil {
			return f, err
		}
		f.MaxRSS = max(f.MaxRSS, last.RSS)
	}
	f.CPU, f.Window = last.CPU-first.CPU, time.Since(start)
	return f, nil
}
