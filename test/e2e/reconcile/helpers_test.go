package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// atollNamespace creates a fresh namespace for Atoll's own objects.
func atollNamespace(t *testing.T) string {
	t.Helper()
	return fleettest.Namespace(t, master, "atoll-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
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
		ready, _ := fleettest.NodeReady(ctx, master, prefer)
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
	out, err := g.run(args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// gitMaybe is git, returning "" when the command fails.
func (g *gitRepo) gitMaybe(args ...string) string {
	out, _ := g.run(args...)
	return out
}

func (g *gitRepo) run(args ...string) (string, error) {
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
		return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
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

func deleteFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
