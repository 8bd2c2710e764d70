package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// TestWatch: `atoll watch` on a directory — add a Cluster file, change a
// taint, break the YAML, delete the file.
func TestWatch(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	dir := t.TempDir()
	p := fleettest.StartAtoll(t, env, atollBin, "watch", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--drain-timeout", "2m", "--log-level", "info")
	// Started: the first pass (an empty directory, refused as declaring
	// no cluster) is stored.
	testenv.WaitFor(t, time.Minute, "atoll watch's first pass", func(ctx context.Context) (bool, error) {
		st, err := reconcile.ReadStatus(ctx, master, ns)
		return err == nil && st.Revision != "", err
	})

	// Add a Cluster file: the node is Ready within 5 s.
	start := time.Now()
	writeFile(t, filepath.Join(dir, "remote-1.yaml"), fleettest.ClusterYAML("remote-1", remoteKubeconfig["remote-1"]))
	testenv.WaitFor(t, 5*time.Second, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
	t.Logf("remote-1 Ready %s after its file was written", time.Since(start).Round(10*time.Millisecond))
	writeFile(t, filepath.Join(dir, "remote-2.yaml"), fleettest.ClusterYAML("remote-2", remoteKubeconfig["remote-2"]))
	testenv.WaitFor(t, 30*time.Second, "remote-2 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-2") })

	// Pods, some on remote-2 (it is preferred; the scheduler's default
	// spreading may still put some on remote-1).
	app := fleettest.Namespace(t, master, "e2e-watch-app")
	deployment(t, app, "web", 3, "remote-2")
	var before map[string]string
	testenv.WaitFor(t, time.Minute, "3 pods Running, some on remote-2", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		before = pods
		return err == nil && len(pods) == 3 && anyOn(pods, "remote-2"), err
	})

	perNode := map[string]int{}
	for _, n := range before {
		perNode[n]++
	}
	// `atoll status` shows both clusters Ready and the pods delegated
	// (refreshed on the reconciler's 30s resync).
	testenv.WaitFor(t, 90*time.Second, fmt.Sprintf("atoll status to show pods per cluster %v", perNode), func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, atollBin, "status", "-o", "json", "--kubeconfig", env.Master.Kubeconfig, "--namespace", ns).Output()
		if err != nil {
			return false, err
		}
		var st struct {
			State    string `json:"state"`
			Clusters []struct {
				Name          string `json:"name"`
				NodeReady     string `json:"nodeReady"`
				DelegatedPods int    `json:"delegatedPods"`
				Revision      string `json:"revision"`
			} `json:"clusters"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return false, err
		}
		ok := st.State == "success" && len(st.Clusters) == 2
		for _, c := range st.Clusters {
			ok = ok && c.NodeReady == "True" && c.Revision != ""
			ok = ok && c.DelegatedPods == perNode[c.Name]
		}
		return ok, nil
	})
	if out, err := exec.Command(atollBin, "status", "--kubeconfig", env.Master.Kubeconfig, "--namespace", ns).Output(); err != nil ||
		!regexp.MustCompile(fmt.Sprintf(`(?m)^remote-2\s+True\s+%d\s`, perNode["remote-2"])).Match(out) {
		t.Errorf("atoll status table:\n%s(%v)", out, err)
	}

	// Change a taint: the node is updated, the pods are untouched.
	writeFile(t, filepath.Join(dir, "remote-2.yaml"), fleettest.ClusterYAML("remote-2", remoteKubeconfig["remote-2"], "dedicated"))
	testenv.WaitFor(t, 30*time.Second, "taint on remote-2", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, "remote-2", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tt := range n.Spec.Taints {
			if tt.Key == "dedicated" && tt.Value == "yes" {
				return true, nil
			}
		}
		return false, nil
	})
	if ok, _ := fleettest.NodeReady(testenv.Context(t), master, "remote-2"); !ok {
		t.Errorf("remote-2 not Ready after the taint change")
	}
	after, err := runningPods(testenv.Context(t), app, "web")
	if err != nil || !maps.Equal(before, after) {
		t.Errorf("pods changed with the taint: before %v, after %v (%v)", before, after, err)
	}

	// Invalid YAML: nothing changes, and the error names file and line.
	bad := fleettest.ClusterYAML("remote-2", remoteKubeconfig["remote-2"]) + "  bogus: true\n"
	writeFile(t, filepath.Join(dir, "remote-2.yaml"), bad)
	badLine := strings.Count(bad, "\n")
	want := regexp.MustCompile(`remote-2\.yaml:` + fmt.Sprint(badLine) + `\b`)
	var st *reconcile.FleetStatus
	testenv.WaitFor(t, 30*time.Second, "the error to be reported", func(ctx context.Context) (bool, error) {
		var err error
		st, err = reconcile.ReadStatus(ctx, master, ns)
		return err == nil && st.State == reconcile.StateFailure && want.MatchString(st.Error), err
	})
	if !want.MatchString(p.Output()) {
		t.Errorf("atoll watch did not print the error with file and line %s", want)
	}
	n, err := master.CoreV1().Nodes().Get(testenv.Context(t), "remote-2", metav1.GetOptions{})
	if err != nil || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("remote-2 changed after an invalid revision: %v %v", n.Spec.Taints, err)
	}

	// Delete the file: remote-2 is cordoned, its pods are evicted and run
	// on remote-1, the node is gone, and so is what Atoll made in remote-2:
	// the pods' copies and the namespace it created for them.
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := master.CoreV1().Nodes().Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=remote-2"})
	if err != nil {
		t.Fatal(err)
	}
	cordoned := make(chan bool, 1)
	go func() {
		seen := false
		for ev := range w.ResultChan() {
			if node, ok := ev.Object.(*corev1.Node); ok && ev.Type != watch.Deleted && node.Spec.Unschedulable {
				seen = true
			}
		}
		cordoned <- seen
	}()
	deleteFile(t, filepath.Join(dir, "remote-2.yaml"))
	testenv.WaitFor(t, 2*time.Minute, "remote-2 gone", func(ctx context.Context) (bool, error) { return fleettest.NodeGone(ctx, master, "remote-2") })
	testenv.WaitFor(t, 2*time.Minute, "3 pods Running on remote-1", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		return err == nil && len(pods) == 3 && allOn(pods, "remote-1"), err
	})
	remote2, err := env.Remotes[1].Clientset()
	if err != nil || env.Remotes[1].Name != "remote-2" {
		t.Fatalf("remote-2's client: %v (remotes[1] is %s)", err, env.Remotes[1].Name)
	}
	testenv.WaitFor(t, 2*time.Minute, "nothing of node remote-2 left in remote-2, namespace "+app+" gone there", func(ctx context.Context) (bool, error) {
		pods, err := remote2.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: vnode.LabelNode + "=remote-2"})
		if err != nil || len(pods.Items) > 0 {
			return false, fmt.Errorf("copies left: %d (%v)", len(pods.Items), err)
		}
		_, err = remote2.CoreV1().Namespaces().Get(ctx, app, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Errorf("namespace %s: %v", app, err)
	})
	cancel()
	if !<-cordoned {
		t.Errorf("remote-2 was not cordoned before it went")
	}
	if !strings.Contains(p.Output(), "draining remote-2") {
		t.Errorf("atoll watch showed no drain progress")
	}
	if ok, _ := fleettest.NodeReady(testenv.Context(t), master, "remote-1"); !ok {
		t.Errorf("remote-1 not Ready at the end")
	}
}

func anyOn(pods map[string]string, node string) bool {
	for _, n := range pods {
		if n == node {
			return true
		}
	}
	return false
}

func allOn(pods map[string]string, node string) bool {
	for _, n := range pods {
		if n != node {
			return false
		}
	}
	return true
}

// TestWatchBoundedRender: a revision whose kustomize build explodes fails
// within its limits, and the next, good revision is applied by the same
// `atoll watch` process.
func TestWatchBoundedRender(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "remote-1.yaml"), fleettest.ClusterYAML("remote-1", remoteKubeconfig["remote-1"]))
	bomb, err := os.ReadFile("../../../reconcile/testdata/aliasbomb.yaml") // aliases expanding to 9^9 strings
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "bomb.yaml"), string(bomb))
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources: [remote-1.yaml, bomb.yaml]\n")
	fleettest.StartAtoll(t, env, atollBin, "watch-bomb", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")
	testenv.WaitFor(t, 2*time.Minute, "the exploding revision to fail on a render limit", func(ctx context.Context) (bool, error) {
		st, err := reconcile.ReadStatus(ctx, master, ns)
		return err == nil && st.State == reconcile.StateFailure && strings.Contains(st.Description, "render limit exceeded"), err
	})
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || len(nodes) != 0 {
		t.Fatalf("nodes after the exploding revision: %v (%v), want none", nodes, err)
	}

	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources: [remote-1.yaml]\n")
	testenv.WaitFor(t, time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
}
