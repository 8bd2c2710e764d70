package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is one component the bed started. Its fields are what the state
// file records, so that `down` can stop exactly these processes later.
type Process struct {
	Name string   `json:"name"` // e.g. "remote-1/kube-apiserver"
	Path string   `json:"path"`
	Args []string `json:"args"`
	Log  string   `json:"log"`
	Pid  int      `json:"pid"`

	// exited is closed when a process started by this process is reaped.
	exited chan struct{}
}

// start runs the process with its output appended to its log. A detached
// process gets its own session and outlives the caller (the `up` command);
// otherwise it dies with the caller (tests), so a crashed test leaks nothing.
func (p *Process) start(detached bool) error {
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log %s: %w", p.Log, err)
	}
	defer log.Close()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = log, log
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.Pid = cmd.Process.Pid
	p.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// Running reports whether the process is alive and is still the program the
// bed started (a recycled pid running something else does not count).
func (p *Process) Running() bool {
	if p.Pid <= 0 {
		return false
	}
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
		}
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); err == nil {
		// A zombie has exited; only its parent has yet to reap it.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return strings.TrimSuffix(exe, " (deleted)") == p.Path
}

// stop sends SIGTERM, then SIGKILL after grace, and waits until the process
// is gone.
func (p *Process) stop(ctx context.Context, grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", p.Name, p.Pid, err)
	}
	deadline := time.Now().Add(grace)
	killed := false
	for p.Running() {
		if !killed && time.Now().After(deadline) {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
			killed = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s (pid %d): %w", p.Name, p.Pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
