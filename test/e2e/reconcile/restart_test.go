package reconcile_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// TestRestartConverges: atoll killed in the middle of applying a revision
// (while adding, then while draining) converges after a restart to the
// declared set, without duplicate nodes.
func TestRestartConverges(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "remote-1.yaml"), fleettest.ClusterYAML("remote-1", remoteKubeconfig["remote-1"]))
	writeFile(t, filepath.Join(dir, "remote-2.yaml"), fleettest.ClusterYAML("remote-2", remoteKubeconfig["remote-2"]))
	p := fleettest.StartAtoll(t, env, atollBin, "restart", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--drain-timeout", "2m", "--log-level", "info")

	// Killed as soon as the first node exists.
	testenv.WaitFor(t, time.Minute, "a first node", func(ctx context.Context) (bool, error) {
		nodes, err := atollNodes(ctx)
		return len(nodes) > 0, err
	})
	p.Kill()
	p.Start()
	testenv.WaitFor(t, time.Minute, "both nodes Ready", func(ctx context.Context) (bool, error) {
		a, err := fleettest.NodeReady(ctx, master, "remote-1")
		b, _ := fleettest.NodeReady(ctx, master, "remote-2")
		return a && b, err
	})
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || !slices.Equal(nodes, []string{"remote-1", "remote-2"}) {
		t.Errorf("nodes = %v (%v), want exactly remote-1 and remote-2", nodes, err)
	}

	// Killed while draining remote-2.
	app := fleettest.Namespace(t, master, "e2e-restart-app")
	deployment(t, app, "web", 2, "remote-2")
	testenv.WaitFor(t, time.Minute, "2 pods Running, some on remote-2", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		return err == nil && len(pods) == 2 && anyOn(pods, "remote-2"), err
	})
	deleteFile(t, filepath.Join(dir, "remote-2.yaml"))
	testenv.WaitFor(t, time.Minute, "remote-2 cordoned", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, "remote-2", metav1.GetOptions{})
		return err == nil && n.Spec.Unschedulable, err
	})
	p.Kill()
	p.Start()
	testenv.WaitFor(t, time.Minute, "remote-2 gone", func(ctx context.Context) (bool, error) { return fleettest.NodeGone(ctx, master, "remote-2") })
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || !slices.Equal(nodes, []string{"remote-1"}) {
		t.Errorf("nodes = %v (%v), want exactly remote-1", nodes, err)
	}
	testenv.WaitFor(t, 3*time.Minute, "2 pods Running on remote-1", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		return err == nil && len(pods) == 2 && allOn(pods, "remote-1"), err
	})
	if ok, _ := fleettest.NodeReady(testenv.Context(t), master, "remote-1"); !ok {
		t.Errorf("remote-1 not Ready at the end")
	}
}
