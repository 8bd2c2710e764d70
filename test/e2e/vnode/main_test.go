// Package vnode_test runs virtual nodes against the local test bed (a master
// and two remotes made of real Kubernetes parts, kwok as the remotes'
// kubelet) and checks what issue 3 promises, end to end.
package vnode_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var err error
	env, err = testenv.Start(ctx, testenv.Options{Remotes: 2, NodesPerRemote: 3, Log: os.Stderr})
	if err != nil {
		log.Printf("start test bed: %v", err)
		return 1
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.Stop(stopCtx); err != nil {
			log.Printf("stop test bed: %v", err)
		}
	}()
	if master, err = env.Master.Clientset(); err != nil {
		log.Print(err)
		return 1
	}
	for _, r := range env.Remotes {
		cs, err := r.Clientset()
		if err != nil {
			log.Print(err)
			return 1
		}
		remotes[r.Name] = cs
	}
	if masterID, err = vnode.MasterIdentity(ctx, master); err != nil {
		log.Print(err)
		return 1
	}
	atollBin = filepath.Join(env.Dir, "atoll")
	build := exec.CommandContext(ctx, "go", "build", "-o", atollBin, "github.com/atoll-dev/atoll/cmd/atoll")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Printf("build atoll: %v", err)
		return 1
	}
	for _, r := range env.Remotes {
		port, err := testenv.FreePort()
		if err != nil {
			log.Print(err)
			return 1
		}
		kubeletPort, err := testenv.FreePort()
		if err != nil {
			log.Print(err)
			return 1
		}
		p := &nodeProcess{name: r.Name, remoteKubeconfig: r.Kubeconfig, metricsAddr: fmt.Sprintf("127.0.0.1:%d", port), kubeletPort: kubeletPort}
		if err := p.start(); err != nil {
			log.Print(err)
			return 1
		}
		defer p.kill()
		nodes[r.Name] = p
	}
	for name := range nodes {
		if err := waitNodeReady(ctx, name, 2*time.Minute); err != nil {
			log.Printf("virtual node %s: %v (log: %s)", name, err, nodes[name].logPath())
			return 1
		}
	}
	code := m.Run()
	if code != 0 {
		for _, p := range nodes {
			log.Printf("virtual node %s log: %s", p.name, p.logPath())
		}
	}
	return code
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
		return nodeReady(n), nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
