package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// TestAtollWritesOnlyVirtualNodes: the ClusterRole lets Atoll write any
// Node, but deploy/master's admission policy lets its identity create,
// change and delete only Nodes labelled atoll.dev/cluster=<name>; and
// Atoll itself leaves alone a real Node a Cluster is named after — its
// labels, its Lease, its pods — and says so in the fleet status.
func TestAtollWritesOnlyVirtualNodes(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	kc := fleettest.AtollKubeconfig(t, env, ns)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	atoll, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t)
	const real = "e2e-real"
	if _, err := master.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: real,
		Labels: map[string]string{corev1.LabelHostname: real}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.CoreV1().Nodes().Delete(context.Background(), real, metav1.DeleteOptions{}) })

	// The policy, once the API server has loaded it, refuses writes to the
	// real node and allows those to a virtual one. The writes to the real
	// node are dry runs: admission runs, nothing is stored, so one allowed
	// before the policy was loaded changes nothing that follows.
	dry := []string{metav1.DryRunAll}
	refused := func(err error) error {
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "Atoll writes only its virtual nodes") {
			return nil
		}
		return fmt.Errorf("want refused by atoll-master-nodes, got %v", err)
	}
	testenv.WaitFor(t, 30*time.Second, "Atoll's label on the real node refused", func(ctx context.Context) (bool, error) {
		_, err := atoll.CoreV1().Nodes().Patch(ctx, real, types.MergePatchType, []byte(`{"metadata":{"labels":{"atoll.dev/cluster":"e2e-real"}}}`), metav1.PatchOptions{DryRun: dry})
		return refused(err) == nil, refused(err)
	})
	if err := refused(atoll.CoreV1().Nodes().Delete(ctx, real, metav1.DeleteOptions{DryRun: dry})); err != nil {
		t.Errorf("delete the real node: %v", err)
	}
	_, err = atoll.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "e2e-mislabelled",
		Labels: map[string]string{reconcile.LabelCluster: "elsewhere"}}}, metav1.CreateOptions{})
	if err := refused(err); err != nil {
		t.Errorf("create a node labelled for another cluster: %v", err)
	}
	const virtual = "e2e-virtual"
	if _, err := atoll.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: virtual,
		Labels: map[string]string{reconcile.LabelCluster: virtual}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a virtual node: %v", err)
	}
	_, err = atoll.CoreV1().Nodes().Patch(ctx, virtual, types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/labels/atoll.dev~1cluster"}]`), metav1.PatchOptions{})
	if err := refused(err); err != nil {
		t.Errorf("remove the label of a virtual node: %v", err)
	}
	if err := atoll.CoreV1().Nodes().Delete(ctx, virtual, metav1.DeleteOptions{}); err != nil {
		t.Errorf("delete a virtual node: %v", err)
	}

	// A pod bound to the real node, in a namespace remote-1 does not have.
	app := fleettest.Namespace(t, master, "e2e-real-node")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "on-real", Namespace: app},
		Spec: corev1.PodSpec{NodeName: real, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
	if _, err := master.CoreV1().Pods(app).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // no kubelet confirms its end
		_ = master.CoreV1().Pods(app).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	})

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, real+".yaml"), fleettest.ClusterYAML(real, remoteKubeconfig["remote-1"]))
	fleettest.StartAtoll(t, env, atollBin, "real-node", "watch", "--dir", dir, "--kubeconfig", kc, "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")
	testenv.WaitFor(t, time.Minute, "the conflict in the fleet status", func(ctx context.Context) (bool, error) {
		st, err := reconcile.ReadStatus(ctx, master, ns)
		if err != nil || len(st.Clusters) != 1 {
			return false, err
		}
		c := st.Clusters[0]
		return c.Name == real && !c.Ready && strings.Contains(c.LastError, "node e2e-real exists and is not Atoll's"), errors.New(c.LastError)
	})
	n, err := master.CoreV1().Nodes().Get(ctx, real, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Labels[reconcile.LabelCluster]; ok || n.Labels["type"] == "virtual-kubelet" || n.Annotations["atoll.dev/applied"] != "" {
		t.Errorf("Atoll changed the real node: labels %v, annotations %v", n.Labels, n.Annotations)
	}
	if _, err := master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, real, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Atoll renewed a lease for the real node: %v", err)
	}
	remote, err := env.Remotes[0].Clientset()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.CoreV1().Namespaces().Get(ctx, app, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the real node's pod was delegated to remote-1 (its namespace is there: %v)", err)
	}
}
