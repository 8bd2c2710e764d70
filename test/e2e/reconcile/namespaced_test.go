package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// TestNamespacedRemote: `atoll cluster add --namespaces` joins a remote
// where Atoll may use one existing namespace only. Its identity there has
// Roles in that namespace and nothing else: no pods in kube-system, no
// namespace create, no Node read. With it the node is Ready, advertises
// what the namespace's ResourceQuota allows, runs a pod of that namespace
// and leaves one of another namespace undelegated, creating no namespace;
// removed, it deletes its copy and leaves the namespace.
func TestNamespacedRemote(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	rc := env.Remotes[0]
	ctx := testenv.Context(t)
	remote, err := rc.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	// The remote's administrator made the namespace, with a quota.
	served := fleettest.Namespace(t, master, "served")
	other := fleettest.Namespace(t, master, "other")
	remoteNamespace(t, remote, served)
	if _, err := remote.CoreV1().ResourceQuotas(served).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceRequestsCPU: resource.MustParse("2"), corev1.ResourceRequestsMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("5"),
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	decl, err := exec.CommandContext(ctx, atollBin, "cluster", "add", "scoped", "--remote-kubeconfig", rc.Kubeconfig,
		"--kubeconfig", env.Master.Kubeconfig, "--namespace", ns, "--namespaces", served).Output()
	if err != nil {
		t.Fatalf("atoll cluster add --namespaces: %v\n%s", err, stderrOf(err))
	}
	if !strings.Contains(string(decl), "restrictTo: ["+served+"]") {
		t.Fatalf("the Cluster printed is not restricted to %s:\n%s", served, decl)
	}

	// What the identity may and may not do in the remote.
	identity := "system:serviceaccount:" + served + ":atoll"
	for _, tt := range []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{authorizationv1.ResourceAttributes{Namespace: served, Verb: "create", Resource: "pods"}, true},
		{authorizationv1.ResourceAttributes{Namespace: served, Verb: "create", Resource: "pods", Subresource: "exec"}, true},
		{authorizationv1.ResourceAttributes{Namespace: served, Verb: "create", Resource: "secrets"}, true},
		{authorizationv1.ResourceAttributes{Namespace: served, Verb: "list", Resource: "resourcequotas"}, true},
		{authorizationv1.ResourceAttributes{Namespace: "kube-system", Verb: "create", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "default", Verb: "create", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "namespaces"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Resource: "namespaces", Name: served}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "kube-system", Verb: "get", Resource: "secrets"}, false},
	} {
		r, err := remote.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: identity, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + served, "system:authenticated"}, ResourceAttributes: &tt.attrs,
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != tt.want {
			t.Errorf("%s %s %+v: allowed %v, want %v", identity, tt.attrs.Verb, tt.attrs, r.Status.Allowed, tt.want)
		}
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "scoped.yaml"), string(decl)+"  providerTaint: false\n")
	// A second cluster stays, so that removing scoped is no removal of all.
	writeFile(t, filepath.Join(dir, "stays.yaml"), fleettest.ClusterYAML("stays", remoteKubeconfig[env.Remotes[1].Name]))
	fleettest.StartAtoll(t, env, atollBin, "watch-scoped", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")
	testenv.WaitFor(t, time.Minute, "scoped Ready with the quota's capacity", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, "scoped", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		a := n.Status.Allocatable
		return fleettest.IsNodeReady(n) && a.Cpu().Cmp(resource.MustParse("2")) == 0 && a.Memory().Cmp(resource.MustParse("4Gi")) == 0 &&
			a.Pods().Value() == 5, fmt.Errorf("allocatable %v, conditions %v", a, n.Status.Conditions)
	})

	for _, p := range []string{served, other} {
		testenv.WaitFor(t, time.Minute, "default service account in "+p, func(ctx context.Context) (bool, error) {
			_, err := master.CoreV1().ServiceAccounts(p).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		if _, err := master.CoreV1().Pods(p).Create(ctx, scopedPod(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 2*time.Minute, "the pod of "+served+" Running from its copy", func(ctx context.Context) (bool, error) {
		m, err := master.CoreV1().Pods(served).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, rerr := remote.CoreV1().Pods(served).Get(ctx, "web", metav1.GetOptions{})
		return m.Status.Phase == corev1.PodRunning && rerr == nil, fmt.Errorf("phase %s, copy: %v", m.Status.Phase, rerr)
	})
	testenv.WaitFor(t, time.Minute, "the pod of "+other+" NamespaceNotServed", func(ctx context.Context) (bool, error) {
		m, err := master.CoreV1().Pods(other).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range m.Status.Conditions {
			if c.Type == vnode.ConditionDelegated {
				return c.Status == corev1.ConditionFalse && c.Reason == vnode.ReasonNamespaceNotServed && m.Status.Phase == corev1.PodPending, nil
			}
		}
		return false, nil
	})
	if _, err := remote.CoreV1().Namespaces().Get(ctx, other, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("remote namespace %s: %v, want none made", other, err)
	}

	// Removed: its copy goes, the namespace stays.
	if err := os.Remove(filepath.Join(dir, "scoped.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "scoped gone", func(ctx context.Context) (bool, error) { return fleettest.NodeGone(ctx, master, "scoped") })
	testenv.WaitFor(t, time.Minute, "the copy deleted", func(ctx context.Context) (bool, error) {
		l, err := remote.CoreV1().Pods(served).List(ctx, metav1.ListOptions{LabelSelector: vnode.LabelNode + "=scoped"})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0, fmt.Errorf("%d copies left", len(l.Items))
	})
	if n, err := remote.CoreV1().Namespaces().Get(ctx, served, metav1.GetOptions{}); err != nil || n.DeletionTimestamp != nil {
		t.Errorf("remote namespace %s: %v (deleting: %v), want it kept", served, err, n != nil && n.DeletionTimestamp != nil)
	}
}

// remoteNamespace creates a namespace in a remote and deletes it when the
// test ends.
func remoteNamespace(t *testing.T, remote kubernetes.Interface, name string) {
	t.Helper()
	if _, err := remote.CoreV1().Namespaces().Create(testenv.Context(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = remote.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// scopedPod is a pod for the node scoped, with the requests its remote
// namespace's quota asks for.
func scopedPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{corev1.LabelHostname: "scoped", reconcile.LabelCluster: "scoped"},
			Containers: []corev1.Container{{Name: "web", Image: "nginx", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			}}},
		},
	}
}
