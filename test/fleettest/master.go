package fleettest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/deploy"
	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// Namespace creates a master namespace named prefix plus a random suffix
// (at most 63 characters) and deletes it when the test ends.
func Namespace(t testing.TB, master kubernetes.Interface, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%04d", prefix, rand.IntN(10000))
	if len(name) > 63 {
		name = strings.Trim(name[len(name)-63:], "-")
	}
	if _, err := master.CoreV1().Namespaces().Create(testenv.Context(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = master.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// MasterIdentity applies deploy/master's RBAC to the bed's master, as
// `kubectl apply -k deploy/master` does, and writes to dir a kubeconfig
// for the ServiceAccount it binds (atoll-system/atoll), with a token valid
// for ttl. Each test's Atoll keeps its state in a namespace of its own, ns:
// the Roles deploy/master grants in atoll-system are bound there too (with
// ns "", not). Atoll run with it has exactly the rights a real master
// gives it, so a missing verb fails a test. The cluster-scoped objects
// are the bed's, shared by its tests, as in a real master.
func MasterIdentity(ctx context.Context, master *testenv.Cluster, ns, dir string, ttl time.Duration) (string, error) {
	objs, err := deploy.Objects(deploy.MasterRBAC)
	if err != nil {
		return "", fmt.Errorf("deploy/master: %w", err)
	}
	const home = "atoll-system"
	for _, u := range objs {
		if k := u.GetKind(); ns != "" && u.GetNamespace() == home && (k == "Role" || k == "RoleBinding") {
			c := u.DeepCopy()
			c.SetNamespace(ns)
			objs = append(objs, c)
		}
	}
	if err := deploy.Apply(ctx, master.Config, objs); err != nil {
		return "", fmt.Errorf("deploy/master: %w", err)
	}
	cs, err := master.Clientset()
	if err != nil {
		return "", err
	}
	tr, err := deploy.MintToken(ctx, cs, home+"/atoll", ttl)
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(master.CAFile)
	if err != nil {
		return "", err
	}
	data, err := deploy.TokenKubeconfig(master.Name, master.Server, ca, "", tr.Status.Token)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "master-atoll.kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// AtollKubeconfig is MasterIdentity for a test: its Atoll's namespace ns,
// a token valid for two hours, the kubeconfig in a directory of the test.
func AtollKubeconfig(t testing.TB, env *testenv.Env, ns string) string {
	t.Helper()
	path, err := MasterIdentity(testenv.Context(t), env.Master, ns, t.TempDir(), 2*time.Hour)
	if err != nil {
		t.Fatalf("Atoll's identity in the master: %v", err)
	}
	return path
}

// BindDependencies lets Atoll's identity in the master (MasterIdentity)
// read the ConfigMaps and Secrets of namespace ns, as an admin does for a
// namespace whose pods use them on virtual nodes (deploy/master's
// ClusterRole vnode.DependenciesRole). The binding goes with the namespace.
func BindDependencies(t testing.TB, master kubernetes.Interface, ns string) {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: vnode.DependenciesRole, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: vnode.DependenciesRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "atoll-system", Name: "atoll"}},
	}
	if _, err := master.RbacV1().RoleBindings(ns).Create(testenv.Context(t), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// SecretName is the name of the kubeconfig Secret KubeconfigSecrets makes
// for a remote.
func SecretName(remote string) string { return remote + "-kubeconfig" }

// KubeconfigSecrets creates a SecretName(remote) Secret in ns for every
// remote, holding under reconcile.DefaultSecretKey a kubeconfig of the
// least-privilege identity deploy/remote grants (RemoteIdentity), valid for
// two hours.
func KubeconfigSecrets(t testing.TB, master kubernetes.Interface, ns string, remotes []*testenv.Cluster) {
	t.Helper()
	ctx := testenv.Context(t)
	for _, rc := range remotes {
		path, err := RemoteIdentity(ctx, rc, t.TempDir(), 2*time.Hour)
		if err != nil {
			t.Fatalf("identity for %s: %v", rc.Name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretName(rc.Name), Namespace: ns},
			Data: map[string][]byte{reconcile.DefaultSecretKey: data}}
		if _, err := master.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// ClusterYAML declares a Cluster named name; cred is a kubeconfig path
// (watch mode) or "secret:NAME". Each taint key becomes a NoSchedule taint
// with value "yes". The node goes without the provider taint (the suites'
// workloads are plain Deployments); TaintedClusterYAML keeps it.
func ClusterYAML(name, cred string, taints ...string) string {
	return TaintedClusterYAML(name, cred, taints...) + "  providerTaint: false\n"
}

// TaintedClusterYAML is ClusterYAML with the default provider taint.
func TaintedClusterYAML(name, cred string, taints ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n  credentials:\n", name)
	if s, ok := strings.CutPrefix(cred, "secret:"); ok {
		fmt.Fprintf(&b, "    secretRef: {name: %s}\n", s)
	} else {
		fmt.Fprintf(&b, "    path: %s\n", cred)
	}
	if len(taints) > 0 {
		b.WriteString("  node:\n    taints:\n")
		for _, t := range taints {
			fmt.Fprintf(&b, "      - {key: %s, value: \"yes\", effect: NoSchedule}\n", t)
		}
	}
	return b.String()
}

// CleanNodes removes every Atoll node and its Lease from the master when
// the test ends. Register it before starting Atoll processes, so that it
// runs after their cleanup has stopped them.
func CleanNodes(t testing.TB, master kubernetes.Interface) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := DeleteNodes(ctx, master); err != nil {
			t.Logf("clean nodes: %v", err)
		}
	})
}

// DeleteNodes deletes every Atoll node and its Lease from the master and
// waits until they are gone.
func DeleteNodes(ctx context.Context, master kubernetes.Interface) error {
	list, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range list.Items {
		_ = master.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
		_ = master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, n.Name, metav1.DeleteOptions{})
	}
	return wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
		return err == nil && len(l.Items) == 0, nil
	})
}

// NodeReady reports whether the master's node name is Ready.
func NodeReady(ctx context.Context, master kubernetes.Interface, name string) (bool, error) {
	n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return IsNodeReady(n), nil
}

// IsNodeReady reports whether a Node's Ready condition is True.
func IsNodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// NodeGone reports whether the master has no node name.
func NodeGone(ctx context.Context, master kubernetes.Interface, name string) (bool, error) {
	_, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// PostWebhook posts a GitLab-style push event with token to url and returns
// the status code.
func PostWebhook(ctx context.Context, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"object_kind":"push"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Gitlab-Token", token)
	req.Header.Set("X-Gitlab-Event", "Push Hook")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
