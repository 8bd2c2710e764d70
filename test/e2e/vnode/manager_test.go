package vnode_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// startManager runs a Manager in the test process until the test ends; reg
// receives its metrics (nil: not exported).
func startManager(t *testing.T, reg prometheus.Registerer) *vnode.Manager {
	t.Helper()
	m, err := vnode.NewManager(vnode.ManagerConfig{Master: atollMaster, NodeIP: "127.0.0.1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(testenv.Context(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return m
}

// TestManagerLiveUpdateAndRemove runs a Manager in the test process with one
// extra node on remote-2 and changes it live.
func TestManagerLiveUpdateAndRemove(t *testing.T) {
	ctx := testenv.Context(t)
	m := startManager(t, nil)
	const name = "managed-e2e"
	spec := vnode.NodeSpec{
		Name:     name,
		Labels:   map[string]string{"tier": "bronze"},
		Taints:   []corev1.Taint{{Key: "atoll.dev/e2e", Value: "manager", Effect: corev1.TaintEffectNoSchedule}},
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10")},
		Remote:   env.Remotes[1].Config,
	}
	if err := m.Add(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Remove(context.Background(), name)
		_ = master.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	testenv.WaitFor(t, time.Minute, "node Ready with declared labels, taints, capped capacity", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cpu := n.Status.Allocatable.Cpu()
		ok := fleettest.IsNodeReady(n) && n.Labels["tier"] == "bronze" && len(n.Spec.Taints) > 0 && n.Spec.Taints[0].Key == "atoll.dev/e2e" && cpu.Cmp(resource.MustParse("10")) == 0
		return ok, fmt.Errorf("ready=%v labels=%v taints=%v cpu=%s", fleettest.IsNodeReady(n), n.Labels, n.Spec.Taints, cpu)
	})
	h := m.Health()
	if len(h) != 1 || h[0].Name != name || !h[0].Ready {
		t.Fatalf("Health() = %+v", h)
	}

	spec.Labels = map[string]string{"tier": "gold"}
	spec.Taints = nil
	spec.Capacity = nil
	spec.Cordon = true
	if err := m.Update(spec); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "live update applied", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == "atoll.dev/e2e" {
				return false, fmt.Errorf("taint still there")
			}
		}
		cpu := n.Status.Allocatable.Cpu()
		return n.Labels["tier"] == "gold" && n.Spec.Unschedulable && cpu.Cmp(resource.MustParse("10")) > 0, fmt.Errorf("labels=%v unschedulable=%v cpu=%s", n.Labels, n.Spec.Unschedulable, cpu)
	})
	// Someone strips the Node's labels, Atoll's own included: without
	// atoll.dev/cluster=<name> it is no longer Atoll's Node, so Atoll
	// leaves it as it is (deploy/master's policy would refuse the write
	// anyway) and says why; labelled again, it is Atoll's, and its other
	// labels come back. Atoll writes the Node too (its status), so the
	// edits retry on conflict as any client's read-modify-write must.
	setLabels := func(labels map[string]string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Labels = labels
			_, err = master.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setLabels(nil)
	testenv.WaitFor(t, time.Minute, "the stripped node reported as not Atoll's", func(ctx context.Context) (bool, error) {
		for _, h := range m.Health() {
			if h.Name == name {
				return strings.Contains(h.LastError, "exists and is not Atoll's"), errors.New(h.LastError)
			}
		}
		return false, nil
	})
	if n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil || len(n.Labels) > 0 {
		t.Errorf("Atoll wrote labels on a Node that is not its own: %v (%v)", n.Labels, err)
	}
	setLabels(map[string]string{vnode.LabelCluster: name})
	testenv.WaitFor(t, time.Minute, "labels restored once the node is Atoll's again", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return n.Labels["tier"] == "gold" && n.Labels["type"] == "virtual-kubelet", fmt.Errorf("labels=%v", n.Labels)
	})
	// Someone deletes the Node: it comes back.
	old, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "node recreated with its spec", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return n.UID != old.UID && n.Labels["tier"] == "gold" && n.Spec.Unschedulable, nil
	})
	if err := m.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("node still there after Remove: %v", err)
	}
	if len(m.Health()) != 0 {
		t.Fatalf("Health() after Remove = %+v", m.Health())
	}
}

// TestManagerNamespaceMappingChanged changes a running node's namespace
// mapping from Same to Prefix: the pod's copy is made again in the
// prefixed namespace, the copy the old mapping made is deleted, and the
// master pod, the same one, is Running again.
func TestManagerNamespaceMappingChanged(t *testing.T) {
	ctx := testenv.Context(t)
	m := startManager(t, nil)
	const name = "mapping-e2e"
	spec := vnode.NodeSpec{Name: name, Remote: env.Remotes[1].Config}
	if err := m.Add(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Remove(context.Background(), name)
		_ = master.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	testenv.WaitFor(t, time.Minute, name+" Ready", func(ctx context.Context) (bool, error) {
		return fleettest.NodeReady(ctx, master, name)
	})
	remote, err := env.Remotes[1].Clientset()
	if err != nil {
		t.Fatal(err)
	}
	// Registered before namespace(t), so it runs after the master
	// namespace (and with it the pod) is gone.
	var moved string
	t.Cleanup(func() {
		if moved != "" {
			_ = remote.CoreV1().Namespaces().Delete(context.Background(), moved, metav1.DeleteOptions{})
		}
	})
	ns := namespace(t)
	moved = "moved-" + ns
	runPod(t, ns, "moving", name)
	mp, err := getPod(ctx, ns, "moving")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.CoreV1().Pods(ns).Get(ctx, "moving", metav1.GetOptions{}); err != nil {
		t.Fatalf("copy under the Same mapping: %v", err)
	}

	spec.NamespaceMode, spec.NamespacePrefix = vnode.NamespacePrefix, "moved-"
	if err := m.Update(spec); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "copy Running in "+moved+", the old one gone", func(ctx context.Context) (bool, error) {
		c, err := remote.CoreV1().Pods(moved).Get(ctx, "moving", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if c.Labels[vnode.LabelOriginUID] != string(mp.UID) || c.Status.Phase != corev1.PodRunning {
			return false, fmt.Errorf("new copy: origin %q, phase %s", c.Labels[vnode.LabelOriginUID], c.Status.Phase)
		}
		_, err = remote.CoreV1().Pods(ns).Get(ctx, "moving", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("old copy in %s still there (%v)", ns, err)
		}
		return true, nil
	})
	testenv.WaitFor(t, time.Minute, "master pod Running", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "moving")
		if err != nil {
			return false, err
		}
		return p.UID == mp.UID && p.Status.Phase == corev1.PodRunning, fmt.Errorf("uid %s phase %s", p.UID, p.Status.Phase)
	})
}
