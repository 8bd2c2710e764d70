package vnode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// TestManagerRemoveCleansRemote removes a node whose pods, with a
// ConfigMap and a Secret each, run in two namespaces Atoll created in the
// remote, one of which someone else put a ConfigMap into: once the remote
// answers, nothing labelled for the node is left there, the namespace
// holding only Atoll's copies is gone and the other one stays with what
// it holds. The node reaches its remote with exactly the rights
// deploy/remote grants. Once the remote answers at removal, once it is
// away then and comes back after the node is gone from the master.
func TestManagerRemoveCleansRemote(t *testing.T) {
	tests := []struct {
		name     string
		node     string
		awayThen bool
	}{
		{name: "remote-answers", node: "cleanup-e2e"},
		{name: "remote-away-at-removal", node: "cleanup-away-e2e", awayThen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testenv.Context(t)
			cluster := env.Remotes[1]
			rc := remotes[cluster.Name]
			reg := prometheus.NewRegistry()
			m := startManager(t, reg)
			kc, err := fleettest.RemoteIdentity(ctx, cluster, t.TempDir(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			remoteConfig, err := clientcmd.BuildConfigFromFlags("", kc)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Add(vnode.NodeSpec{Name: tt.node, Remote: remoteConfig}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = m.Remove(context.Background(), tt.node)
				_ = master.CoreV1().Nodes().Delete(context.Background(), tt.node, metav1.DeleteOptions{})
			})
			testenv.WaitFor(t, time.Minute, tt.node+" Ready", func(ctx context.Context) (bool, error) {
				return fleettest.NodeReady(ctx, master, tt.node)
			})

			alone, shared := namespace(t), namespace(t)
			for _, ns := range []string{alone, shared} {
				runPodWithDependencies(t, ns, tt.node)
			}
			theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: shared}}
			if _, err := rc.CoreV1().ConfigMaps(shared).Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			owned := labels.SelectorFromSet(labels.Set{vnode.LabelMaster: masterID, vnode.LabelNode: tt.node}).String()
			if left, err := remoteObjectsOf(ctx, owned); err != nil || len(left) != 6 {
				t.Fatalf("remote objects of %s before removal: %v (%v), want 2 pods, 2 ConfigMaps, 2 Secrets", tt.node, left, err)
			}
			for _, ns := range []string{alone, shared} {
				rns, err := rc.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if err != nil || rns.Labels[vnode.LabelManaged] != "true" || rns.Labels[vnode.LabelNode] != tt.node {
					t.Fatalf("remote namespace %s not labelled as made for %s: %v", ns, tt.node, err)
				}
			}

			if tt.awayThen {
				stopAPIServer(ctx, t, cluster)
				start := time.Now()
				if err := m.Remove(ctx, tt.node); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took > 30*time.Second {
					t.Errorf("Remove took %s while the remote was away: it must not wait for the remote", took)
				}
				checkNodeGone(ctx, t, tt.node)
				if n, err := pendingCleanups(reg); err != nil || n != 1 {
					t.Errorf("atoll_vnode_remote_cleanup_pending series while the remote is away: %d, %v; want 1", n, err)
				}
				if err := cluster.StartAPIServer(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := m.Remove(ctx, tt.node); err != nil {
					t.Fatal(err)
				}
				checkNodeGone(ctx, t, tt.node)
			}
			// The master pods were not drained: gone with their node.
			for _, ns := range []string{alone, shared} {
				if err := master.CoreV1().Pods(ns).Delete(ctx, "web", *metav1.NewDeleteOptions(0)); err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}

			testenv.WaitFor(t, 3*time.Minute, "nothing labelled for "+tt.node+" in the remote, "+alone+" gone", func(ctx context.Context) (bool, error) {
				if left, err := remoteObjectsOf(ctx, owned); err != nil || len(left) > 0 {
					return false, fmt.Errorf("left in the remote: %v (%v)", left, err)
				}
				ns, err := rc.CoreV1().Namespaces().Get(ctx, alone, metav1.GetOptions{})
				if !apierrors.IsNotFound(err) {
					return false, fmt.Errorf("namespace %s still there (%v)", alone, phaseOf(ns))
				}
				return true, nil
			})
			rns, err := rc.CoreV1().Namespaces().Get(ctx, shared, metav1.GetOptions{})
			if err != nil || rns.DeletionTimestamp != nil {
				t.Errorf("namespace %s holding another ConfigMap is being deleted or gone: %v", shared, err)
			}
			if _, err := rc.CoreV1().ConfigMaps(shared).Get(ctx, "theirs", metav1.GetOptions{}); err != nil {
				t.Errorf("the ConfigMap someone else put into %s: %v", shared, err)
			}
			testenv.WaitFor(t, 10*time.Second, "atoll_vnode_remote_cleanup_pending gone", func(context.Context) (bool, error) {
				n, err := pendingCleanups(reg)
				return err == nil && n == 0, fmt.Errorf("%d series (%v)", n, err)
			})
		})
	}
}

// runPodWithDependencies runs the pod web in the master namespace ns on
// node, with the ConfigMap settings and the Secret token it uses (the
// namespace binds Atoll the right to read them).
func runPodWithDependencies(t *testing.T, ns, node string) {
	t.Helper()
	ctx := testenv.Context(t)
	fleettest.BindDependencies(t, master, ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}, Data: map[string]string{"mode": "v1"}}
	if _, err := master.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ns}, StringData: map[string]string{"token": "hunter2"}}
	if _, err := master.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := simplePod(ns, "web", node)
	p.Spec.Volumes = []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "token"}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/token"}}
	p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, ns+"/web Running", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "web")
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
}

// remoteObjectsOf lists the pods, ConfigMaps and Secrets of remote-2 that
// selector selects, as kind namespace/name.
func remoteObjectsOf(ctx context.Context, selector string) ([]string, error) {
	rc := remotes[env.Remotes[1].Name]
	opts := metav1.ListOptions{LabelSelector: selector}
	var out []string
	pods, err := rc.CoreV1().Pods("").List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, o := range pods.Items {
		out = append(out, "pod "+o.Namespace+"/"+o.Name)
	}
	cms, err := rc.CoreV1().ConfigMaps("").List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, o := range cms.Items {
		out = append(out, "configmap "+o.Namespace+"/"+o.Name)
	}
	secrets, err := rc.CoreV1().Secrets("").List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, o := range secrets.Items {
		out = append(out, "secret "+o.Namespace+"/"+o.Name)
	}
	return out, nil
}

// pendingCleanups counts the series of atoll_vnode_remote_cleanup_pending.
func pendingCleanups(reg *prometheus.Registry) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "atoll_vnode_remote_cleanup_pending" {
			return len(mf.GetMetric()), nil
		}
	}
	return 0, nil
}

func checkNodeGone(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if _, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("node %s still in the master after Remove: %v", name, err)
	}
}

func phaseOf(ns *corev1.Namespace) corev1.NamespacePhase {
	if ns == nil {
		return ""
	}
	return ns.Status.Phase
}

// TestRemoteIdentityDeletesOnlyManagedNamespaces: deploy/remote lets
// Atoll's identity delete namespaces (RBAC cannot select by label), and its
// ValidatingAdmissionPolicy narrows that to the namespaces Atoll created:
// with that identity, deleting a plain namespace is refused, deleting one
// labelled atoll.dev/managed is not.
func TestRemoteIdentityDeletesOnlyManagedNamespaces(t *testing.T) {
	ctx := testenv.Context(t)
	cluster := env.Remotes[0]
	rc := remotes[cluster.Name]
	kc, err := fleettest.RemoteIdentity(ctx, cluster, t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	atoll, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, l map[string]string) {
		if _, err := rc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rc.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	plain, managed := fmt.Sprintf("e2e-plain-%d", time.Now().UnixNano()%100000), fmt.Sprintf("e2e-managed-%d", time.Now().UnixNano()%100000)
	create(plain, nil)
	create(managed, map[string]string{vnode.LabelManaged: "true"})
	// The policy is enforced once the API server has read it: the managed
	// namespace's delete says the identity may delete at all.
	testenv.WaitFor(t, time.Minute, "the plain namespace's delete refused by admission", func(ctx context.Context) (bool, error) {
		err := atoll.CoreV1().Namespaces().Delete(ctx, plain, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return false, fmt.Errorf("deleting %s was allowed", plain)
		}
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "atoll-remote-namespaces"), err
	})
	if err := atoll.CoreV1().Namespaces().Delete(ctx, managed, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the managed namespace %s: %v", managed, err)
	}
	if n, err := rc.CoreV1().Namespaces().Get(ctx, plain, metav1.GetOptions{}); err != nil || n.DeletionTimestamp != nil {
		t.Fatalf("the plain namespace %s is going: %v", plain, err)
	}
}
