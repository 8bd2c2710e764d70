package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/testenv"
)

// atollProcess is one `atoll` process (watch or run) writing to a log file.
type atollProcess struct {
	t    *testing.T
	args []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startAtoll starts atoll with args; the test's cleanup kills it.
func startAtoll(t *testing.T, name string, args ...string) *atollProcess {
	t.Helper()
	// Every process serves its own kubelet API, with the bed master's
	// certificates, on a port of its own.
	args = append(args, "--kubelet-port", strconv.Itoa(freePort(t)), "--kubelet-client-ca-file", env.Master.CAFile,
		"--kubelet-tls-cert-file", env.Master.KubeletServingCert, "--kubelet-tls-key-file", env.Master.KubeletServingKey)
	p := &atollProcess{t: t, args: args, log: filepath.Join(env.Dir, "logs", "atoll-"+name+".log")}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			// The bed's directory goes with it: keep the tail in the test log.
			lines := strings.Split(strings.TrimRight(p.output(), "\n"), "\n")
			t.Logf("atoll %s output (last 80 lines of %s):\n%s", name, p.log, strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	return p
}

func (p *atollProcess) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n===== start %s\n", strings.Join(p.args, " "))
	cmd := exec.Command(atollBin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start atoll: %v", err)
	}
	p.cmd = cmd
}

// kill ends the process with SIGKILL: no clean shutdown, like a crash.
func (p *atollProcess) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// output is everything the process printed so far.
func (p *atollProcess) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// atollNamespace creates a fresh namespace for Atoll's own objects.
func atollNamespace(t *testing.T) string {
	t.Helper()
	return namespace(t, "atoll-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
}

// namespace creates a master namespace and deletes it when the test ends.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%04d", prefix, rand.IntN(10000))
	if len(name) > 63 {
		name = strings.Trim(name[len(name)-63:], "-")
	}
	ctx := testenv.Context(t)
	if _, err := master.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = master.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// cleanNodes removes every Atoll node from the master once the test's
// Atoll processes are gone (registered first, so it runs last).
func cleanNodes(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
		if err != nil {
			t.Logf("list nodes: %v", err)
			return
		}
		for _, n := range list.Items {
			_ = master.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
			_ = master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, n.Name, metav1.DeleteOptions{})
		}
		_ = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			l, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
			return err == nil && len(l.Items) == 0, nil
		})
	})
}

func nodeReady(ctx context.Context, name string) (bool, error) {
	n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

func nodeGone(ctx context.Context, name string) (bool, error) {
	_, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// atollNodes returns the names of Atoll's nodes in the master.
func atollNodes(ctx context.Context) ([]string, error) {
	l, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	return out, nil
}

// clusterYAML declares a Cluster; cred is a kubeconfig path (watch mode)
// or "secret:NAME".
func clusterYAML(name, cred string, taints ...string) string {
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

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write then rename, as editors do, so the watcher never sees half a file.
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// deployment creates a Deployment of n replicas in ns that prefers node
// prefer (so its pods start there and can move elsewhere), once that node
// can take pods.
func deployment(t *testing.T, ns, name string, replicas int32, prefer string) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, prefer+" schedulable with allocatable pods", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, prefer, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready, _ := nodeReady(ctx, prefer)
		for _, tt := range n.Spec.Taints {
			if tt.Effect == corev1.TaintEffectNoSchedule || tt.Effect == corev1.TaintEffectNoExecute {
				return false, nil
			}
		}
		return ready && !n.Spec.Unschedulable && n.Status.Allocatable.Pods().Value() > 0, nil
	})
	testenv.WaitFor(t, time.Minute, "default service account in "+ns, func(ctx context.Context) (bool, error) {
		_, err := master.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
							Weight: 100,
							Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
								Key: reconcile.LabelCluster, Operator: corev1.NodeSelectorOpIn, Values: []string{prefer},
							}}},
						}},
					}},
				},
			},
		},
	}
	if _, err := master.AppsV1().Deployments(ns).Create(testenv.Context(t), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// runningPods returns the Running pods of app in ns by UID, with their node.
func runningPods(ctx context.Context, ns, app string) (map[string]string, error) {
	l, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range l.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out[string(p.UID)] = p.Spec.NodeName
		}
	}
	return out, nil
}

// gitRepo is a bare repository served by the real git http-backend, and a
// working clone that pushes to it.
type gitRepo struct {
	t    *testing.T
	URL  string
	work string
	home string
}

func (g *gitRepo) git(args ...string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.work
	cmd.Env = append(os.Environ(), "HOME="+g.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(g.home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_TERMINAL_PROMPT=0", "GIT_EDITOR=true")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// commit writes files ("" content removes the file), commits with msg and
// pushes; it returns the commit's SHA.
func (g *gitRepo) commit(files map[string]string, msg string) string {
	g.t.Helper()
	for name, content := range files {
		p := filepath.Join(g.work, name)
		if content == "" {
			g.git("rm", "-q", name)
			continue
		}
		writeFile(g.t, p, content)
		g.git("add", name)
	}
	g.git("commit", "-q", "--allow-empty", "-m", msg)
	g.push()
	return g.git("rev-parse", "HEAD")
}

func (g *gitRepo) push() {
	g.t.Helper()
	g.git("push", "-q", "origin", "HEAD:main")
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freeAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

func deleteFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
