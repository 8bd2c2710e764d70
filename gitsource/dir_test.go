package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startDirSource runs a DirSource on dir until the test ends and returns it
// once it watches and its initial signal has been consumed.
func startDirSource(t *testing.T, dir string, debounce time.Duration) *DirSource {
	t.Helper()
	d, err := NewDirSource(DirConfig{Dir: dir, Debounce: debounce, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("DirSource not ready")
	}
	waitSignal(t, d.Changes(), "initial signal")
	return d
}

// waitEmitted waits until the watcher has sent want signals in total.
func waitEmitted(t *testing.T, d *DirSource, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.emitted.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("signals = %d, want %d", d.emitted.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertQuiet checks that no further signal comes within several debounce
// periods (a negative check needs a bounded wait).
func assertQuiet(t *testing.T, d *DirSource, want int64) {
	t.Helper()
	time.Sleep(4 * d.cfg.Debounce)
	if got := d.emitted.Load(); got != want {
		t.Fatalf("signals = %d, want %d", got, want)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirSource(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "clusters/a.yaml"), "name: a\n")
	d := startDirSource(t, root, 200*time.Millisecond)
	ctx := fetchCtx(t)
	first, err := d.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Dir != root || len(first.Revision) != len("sha256:")+64 {
		t.Fatalf("snapshot = %+v", first)
	}

	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantChange bool
	}{
		{name: "create", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "clusters/b.yaml"), "name: b\n") }, wantChange: true},
		{name: "edit", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "clusters/b.yaml"), "name: b2\n") }, wantChange: true},
		{name: "save unchanged", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "clusters/b.yaml"), "name: b2\n") }},
		{name: "atomic rename (editor save)", do: func(t *testing.T) {
			tmp := filepath.Join(root, "clusters/.a.yaml.tmp")
			mustWrite(t, tmp, "name: a2\n")
			if err := os.Rename(tmp, filepath.Join(root, "clusters/a.yaml")); err != nil {
				t.Fatal(err)
			}
		}, wantChange: true},
		{name: "editor scratch file", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "clusters/.a.yaml.swp"), "junk") }},
		{name: "delete", do: func(t *testing.T) {
			if err := os.Remove(filepath.Join(root, "clusters/b.yaml")); err != nil {
				t.Fatal(err)
			}
		}, wantChange: true},
		{name: "new sub-directory", do: func(t *testing.T) {
			if err := os.MkdirAll(filepath.Join(root, "policies/gpu"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(root, "policies/gpu/p.yaml"), "kind: PlacementPolicy\n")
		}, wantChange: true},
		{name: "file in the new sub-directory", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "policies/gpu/q.yaml"), "q\n") }, wantChange: true},
		{name: "rename a directory into the tree", do: func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "moved")
			mustWrite(t, filepath.Join(out, "m.yaml"), "m\n")
			if err := os.Rename(out, filepath.Join(root, "moved")); err != nil {
				t.Fatal(err)
			}
		}, wantChange: true},
		{name: "file in the moved-in directory", do: func(t *testing.T) { mustWrite(t, filepath.Join(root, "moved/n.yaml"), "n\n") }, wantChange: true},
	}
	prev := first.Revision
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := d.emitted.Load()
			st.do(t)
			if st.wantChange {
				waitEmitted(t, d, before+1)
				waitSignal(t, d.Changes(), "change signal")
			} else {
				assertQuiet(t, d, before)
			}
			snap, err := d.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if changed := snap.Revision != prev; changed != st.wantChange {
				t.Errorf("revision changed = %v, want %v", changed, st.wantChange)
			}
			prev = snap.Revision
		})
	}
}

// TestDirSourceBurst: 100 writes in quick succession settle into one
// signal and one revision.
func TestDirSourceBurst(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "a.yaml"), "start\n")
	const debounce = time.Second
	d := startDirSource(t, root, debounce)
	before := d.emitted.Load()

	start := time.Now()
	for i := range 100 {
		mustWrite(t, filepath.Join(root, fmt.Sprintf("f%d.yaml", i%10)), fmt.Sprintf("write %d\n", i))
	}
	if took := time.Since(start); took > debounce/2 {
		t.Fatalf("the burst took %v, too slow to test a %v debounce", took, debounce)
	}
	waitEmitted(t, d, before+1)
	assertQuiet(t, d, before+1)
	waitSignal(t, d.Changes(), "burst signal")
	select {
	case <-d.Changes():
		t.Fatal("more than one signal for the burst")
	default:
	}
	snap, err := d.Fetch(fetchCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The revision is that of the final content.
	want, err := d.hash(context.Background())
	if err != nil || snap.Revision != want {
		t.Fatalf("revision %s, want %s (%v)", snap.Revision, want, err)
	}
	if got := readFile(t, filepath.Join(snap.Dir, "f9.yaml")); got != "write 99\n" {
		t.Errorf("f9.yaml = %q", got)
	}
}

func TestDirSourceLimits(t *testing.T) {
	tests := []struct {
		name    string
		limits  Limits
		files   int
		wantErr error
	}{
		{name: "within limits", limits: Limits{MaxFiles: 5, MaxBytes: 100}, files: 5},
		{name: "too many files", limits: Limits{MaxFiles: 5}, files: 6, wantErr: ErrLimitExceeded},
		{name: "too many bytes", limits: Limits{MaxBytes: 20}, files: 3, wantErr: ErrLimitExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for i := range tt.files {
				mustWrite(t, filepath.Join(root, fmt.Sprintf("f%d.yaml", i)), "0123456789\n")
			}
			d, err := NewDirSource(DirConfig{Dir: root, Limits: tt.limits})
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Fetch(fetchCtx(t))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDirConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	mustWrite(t, file, "x")
	for _, dir := range []string{"", file, filepath.Join(t.TempDir(), "missing")} {
		if _, err := NewDirSource(DirConfig{Dir: dir}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewDirSource(%q) = %v, want ErrInvalidConfig", dir, err)
		}
	}
}
