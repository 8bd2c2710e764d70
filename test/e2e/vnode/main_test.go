// Package vnode_test runs virtual nodes against the local test bed (a master
// and two remotes made of real Kubernetes parts, kwok as the remotes'
// kubelet) and checks what issue 3 promises, end to end.
package vnode_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

var (
	env      *testenv.Env
	master   kubernetes.Interface
	remotes  = map[string]kubernetes.Interface{} // by virtual node (= remote cluster) name
	masterID string
	atollBin string
	nodes    = map[string]*nodeProcess{}
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Remotes: 2, NodesPerRemote: 3}, setup))
}

// setup starts one `atoll node` process per remote and waits until their
// virtual nodes are Ready.
func setup(ctx context.Context, e *testenv.Env) (func(), error) {
	env = e
	var err error
	if master, err = env.Master.Clientset(); err != nil {
		return nil, err
	}
	for _, r := range env.Remotes {
		cs, err := r.Clientset()
		if err != nil {
			return nil, err
		}
		remotes[r.Name] = cs
	}
	if masterID, err = vnode.MasterIdentity(ctx, master); err != nil {
		return nil, err
	}
	if atollBin, err = testenv.BuildAtoll(ctx, env.Dir); err != nil {
		return nil, err
	}
	teardown := func() {
		for _, p := range nodes {
			p.kill()
		}
	}
	for _, r := range env.Remotes {
		port, err := testenv.FreePort()
		if err != nil {
			return teardown, err
		}
		kubeletPort, err := testenv.FreePort()
		if err != nil {
			return teardown, err
		}
		// Each node reaches its remote with exactly the rights
		// deploy/remote grants: a verb Atoll needs and the role lacks fails
		// the suite.
		kc, err := fleettest.RemoteIdentity(ctx, r, env.Dir, 2*time.Hour)
		if err != nil {
			return teardown, err
		}
		p := &nodeProcess{name: r.Name, remoteKubeconfig: kc, metricsAddr: fmt.Sprintf("127.0.0.1:%d", port), kubeletPort: kubeletPort}
		if err := p.start(); err != nil {
			return teardown, err
		}
		nodes[r.Name] = p
	}
	for name := range nodes {
		if err := waitNodeReady(ctx, name, 2*time.Minute); err != nil {
			return teardown, fmt.Errorf("virtual node %s: %w (log: %s)", name, err, nodes[name].logPath())
		}
	}
	return teardown, nil
}

// nodeProcess is one `atoll node` process.
type nodeProcess struct {
	name             string
	remoteKubeconfig string

	metricsAddr string // host:port of its /metrics
	kubeletPort int    // port of its kubelet API

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (p *nodeProcess) logPath() string {
	return filepath.Join(env.Dir, "logs", "atoll-node-"+p.name+".log")
}

func (p *nodeProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(atollBin, "node", "--name", p.name,
		"--kubeconfig", env.Master.Kubeconfig, "--remote-kubeconfig", p.remoteKubeconfig,
		"--node-ip", "127.0.0.1", "--log-level", "debug", "--metrics-addr", p.metricsAddr,
		"--kubelet-port", strconv.Itoa(p.kubeletPort), "--kubelet-client-ca-file", env.Master.CAFile,
		"--kubelet-tls-cert-file", env.Master.KubeletServingCert, "--kubelet-tls-key-file", env.Master.KubeletServingKey)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start atoll node %s: %w", p.name, err)
	}
	p.cmd = cmd
	return nil
}

// kill ends the process with SIGKILL: no clean shutdown, like a crash.
func (p *nodeProcess) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

func waitNodeReady(ctx context.Context, name string, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return fleettest.IsNodeReady(n), nil
	})
}
