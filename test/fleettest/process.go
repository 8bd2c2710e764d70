package fleettest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/atoll-dev/atoll/test/testenv"
)

// Process is one `atoll` process writing to a log file. It needs no test,
// so a TestMain can run one too; Atoll is the same for a test.
type Process struct {
	bin  string
	args []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// NewProcess returns bin with args, writing to log; Start runs it.
func NewProcess(bin, log string, args ...string) *Process {
	return &Process{bin: bin, args: args, log: log}
}

// KubeletAPIArgs are the flags of a kubelet API on port served with the
// bed master's CA and kubelet serving certificate, as the master expects.
func KubeletAPIArgs(env *testenv.Env, port int) []string {
	return []string{"--kubelet-port", strconv.Itoa(port), "--kubelet-client-ca-file", env.Master.CAFile,
		"--kubelet-tls-cert-file", env.Master.KubeletServingCert, "--kubelet-tls-key-file", env.Master.KubeletServingKey}
}

// Start starts the process (again, after Kill) with the same arguments.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n===== start %s\n", strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start atoll: %w", err)
	}
	p.cmd = cmd
	return nil
}

// Pid is the running process's id, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill ends the process with SIGKILL: no clean shutdown, like a crash.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Log is the path of the process's log file.
func (p *Process) Log() string { return p.log }

// Atoll is a Process of a test: a failed start fails the test.
type Atoll struct {
	*Process
	t testing.TB
}

// StartAtoll starts bin with args plus a kubelet API of its own (a free
// port, KubeletAPIArgs); the test's cleanup kills it and, when the test
// failed, logs the output's tail.
func StartAtoll(t testing.TB, env *testenv.Env, bin, name string, args ...string) *Atoll {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, KubeletAPIArgs(env, port)...)
	p := &Atoll{Process: NewProcess(bin, filepath.Join(env.Dir, "logs", "atoll-"+name+".log"), args...), t: t}
	p.Start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			// The bed's directory goes with it: keep the tail in the test log.
			lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
			t.Logf("atoll %s output (last 80 lines of %s):\n%s", name, p.log, strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	return p
}

// Start starts the process (again, after Kill) with the same arguments.
func (p *Atoll) Start() {
	p.t.Helper()
	if err := p.Process.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// FreeAddr returns a loopback host:port that is free now, for a test to
// give to a server it starts (the --http-addr of an `atoll run`).
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
