// Package vnode_test runs virtual nodes against the local test bed (a master
// and two remotes made of real Kubernetes parts, kwok as the remotes'
// kubelet) and checks what issue 3 promises, end to end.
package vnode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
	// atollKubeconfig and atollMaster are Atoll's identity in the master,
	// with exactly the rights deploy/master grants (MasterIdentity).
	atollKubeconfig string
	atollMaster     *rest.Config
	nodes           = map[string]*nodeProcess{}
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
	if atollKubeconfig, err = fleettest.MasterIdentity(ctx, env.Master, "", env.Dir, 2*time.Hour); err != nil {
		return nil, err
	}
	if atollMaster, err = clientcmd.BuildConfigFromFlags("", atollKubeconfig); err != nil {
		return nil, err
	}
	teardown := func() {
		for _, p := range nodes {
			p.Kill()
		}
	}
	for _, r := range env.Remotes {
		// Each node reaches its remote with exactly the rights
		// deploy/remote grants: a verb Atoll needs and the role lacks fails
		// the suite.
		kc, err := fleettest.RemoteIdentity(ctx, r, env.Dir, 2*time.Hour)
		if err != nil {
			return teardown, err
		}
		p, err := startNode(r.Name, kc)
		if err != nil {
			return teardown, err
		}
		nodes[r.Name] = p
	}
	for name := range nodes {
		if err := waitNodeReady(ctx, name, 2*time.Minute); err != nil {
			return teardown, fmt.Errorf("virtual node %s: %w (log: %s)", name, err, nodes[name].Log())
		}
	}
	return teardown, nil
}

// nodeProcess is one `atoll node` process.
type nodeProcess struct {
	*fleettest.Process
	metricsAddr string // host:port of its /metrics
}

func startNode(name, remoteKubeconfig string) (*nodeProcess, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	kubeletPort, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	p := &nodeProcess{metricsAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	args := append([]string{"node", "--name", name,
		"--kubeconfig", atollKubeconfig, "--remote-kubeconfig", remoteKubeconfig,
		"--node-ip", "127.0.0.1", "--log-level", "debug", "--metrics-addr", p.metricsAddr,
	}, fleettest.KubeletAPIArgs(env, kubeletPort)...)
	p.Process = fleettest.NewProcess(atollBin, filepath.Join(env.Dir, "logs", "atoll-node-"+name+".log"), args...)
	return p, p.Start()
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
