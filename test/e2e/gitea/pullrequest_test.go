package gitea_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// syncContext is the context `atoll run` posts under (its --status-context
// default); planContext the one of `atoll plan --post-status`.
const (
	syncContext = "atoll"
	planContext = "atoll/plan"
)

// TestPullRequestWorkflow: `atoll run` follows a Gitea repository and
// posts its statuses there; a pull request gets `atoll plan`'s summary on
// its head; merging applies it; an invalid commit fails naming file:line
// and changes nothing; of two quick pushes the first is superseded; a
// revert applies.
func TestPullRequestWorkflow(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := fleettest.Namespace(t, master, "atoll-gitea-pr")
	fleettest.KubeconfigSecrets(t, master, ns, env.Remotes)
	r := newRepo(t, "fleet-pr")
	c1 := r.commitFiles(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1")}, "add remote-1")

	dir := t.TempDir()
	tokenFile, passwordFile, webhookSecret := filepath.Join(dir, "token"), filepath.Join(dir, "password"), filepath.Join(dir, "webhook")
	for f, content := range map[string]string{tokenFile: gitea.Token, passwordFile: gitea.AdminPassword, webhookSecret: "hook-s3cret"} {
		if err := os.WriteFile(f, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Polling is off (1h): after the first fetch only the webhook fetches,
	// so "two quick pushes" are seen together whatever the timing.
	addr := fleettest.FreeAddr(t)
	fleettest.StartAtoll(t, env, atollBin, "run-gitea",
		"run", "--repo", r.URL(), "--ref", "main", "--path", "fleet", "--interval", "1h", "--allow-insecure-http",
		"--git-username", gitea.AdminUser, "--git-password-file", passwordFile,
		"--status-provider", "gitea", "--status-url", gitea.APIURL, "--status-token-file", tokenFile,
		"--webhook-secret-file", webhookSecret, "--http-addr", addr, "--metrics-addr", "",
		"--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns, "--cache-dir", t.TempDir(),
		"--node-ip", "127.0.0.1", "--drain-timeout", "1m", "--identity", "gitea-pr",
		"--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s", "--log-level", "info")
	fetch := func() {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, "webhook accepted", func(ctx context.Context) (bool, error) {
			code, err := fleettest.PostWebhook(ctx, "http://"+addr+"/hooks/git", "hook-s3cret")
			return code == http.StatusAccepted, err
		})
	}

	// 1. The fleet applies: the node Ready, success on the head.
	testenv.WaitFor(t, 2*time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
	s := r.waitStatus(c1, syncContext, "success", 2*time.Minute)
	if !strings.Contains(s.Description, "1 node ready") {
		t.Errorf("success description on %s = %q, want it to count 1 node ready", c1[:7], s.Description)
	}

	// 2. A branch adding a cluster and a pull request: `atoll plan
	// --post-status` puts the summary on the PR's head.
	r.git("checkout", "-q", "-b", "add-remote-2")
	prHead := r.commitFilesTo("add-remote-2", map[string]string{"fleet/remote-2.yaml": secretCluster("remote-2")}, "add remote-2")
	var pr struct {
		Number int `json:"number"`
		Head   struct {
			SHA string `json:"sha"`
		} `json:"head"`
		MergeCommitSHA string `json:"merge_commit_sha"`
		Merged         bool   `json:"merged"`
	}
	api(t, http.MethodPost, fmt.Sprintf("/repos/%s/%s/pulls", r.owner, r.name),
		map[string]any{"title": "Add remote-2", "head": "add-remote-2", "base": "main"}, &pr, http.StatusCreated)
	if pr.Head.SHA != prHead {
		t.Fatalf("pull request head = %s, want the pushed %s", pr.Head.SHA, prHead)
	}
	code, out := runPlan(t, "main", prHead, "--repo", r.work, "--path", "fleet", "--post-status",
		"--status-provider", "gitea", "--status-url", gitea.APIURL, "--status-token-file", tokenFile)
	if code != 1 {
		t.Errorf("atoll plan exit code %d, want 1 (changes):\n%s", code, out)
	}
	if strings.Contains(out, gitea.Token) {
		t.Errorf("atoll plan output leaks the token:\n%s", out)
	}
	if s := r.latest(prHead, planContext); s.State != "success" || s.Description != "+1 node remote-2" {
		t.Errorf("%s on the PR head = %q %q, want success \"+1 node remote-2\"", planContext, s.State, s.Description)
	}
	if s := r.latest(prHead, syncContext); s.State != "" {
		t.Errorf("an unmerged PR head got a %s status: %+v", syncContext, s)
	}

	// 3. Merge through the API: the merge commit applies, remote-2 Ready.
	// Gitea checks mergeability in the background after the PR is opened
	// and refuses (405) until it has.
	testenv.WaitFor(t, time.Minute, "pull request merged", func(ctx context.Context) (bool, error) {
		code, err := tryAPI(ctx, http.MethodPost, fmt.Sprintf("/repos/%s/%s/pulls/%d/merge", r.owner, r.name, pr.Number),
			`{"Do":"merge","merge_message_field":"Merge add-remote-2"}`)
		return code == http.StatusOK, err
	})
	api(t, http.MethodGet, fmt.Sprintf("/repos/%s/%s/pulls/%d", r.owner, r.name, pr.Number), nil, &pr, http.StatusOK)
	if !pr.Merged || pr.MergeCommitSHA == "" {
		t.Fatalf("pull request not merged: merged=%v merge_commit_sha=%q", pr.Merged, pr.MergeCommitSHA)
	}
	merge := pr.MergeCommitSHA
	r.git("checkout", "-q", "main")
	r.git("pull", "-q", "--ff-only", "origin", "main")
	if head := r.git("rev-parse", "HEAD"); head != merge {
		t.Fatalf("main after the merge = %s, want the merge commit %s", head, merge)
	}
	fetch()
	testenv.WaitFor(t, time.Minute, "remote-2 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-2") })
	r.waitStatus(merge, syncContext, "success", time.Minute)

	// 4. An invalid commit: failure naming file and line; nodes unchanged.
	bad := r.commitFiles(map[string]string{"fleet/remote-1.yaml": strings.Replace(secretCluster("remote-1", "broken"), "NoSchedule", "Sometimes", 1)}, "break remote-1")
	fetch()
	s = r.waitStatus(bad, syncContext, "failure", time.Minute)
	if !regexp.MustCompile(`fleet/remote-1\.yaml:\d+:`).MatchString(s.Description) {
		t.Errorf("failure on the invalid commit = %q, want it to name fleet/remote-1.yaml:LINE", s.Description)
	}
	checkNodes(t, map[string][]string{"remote-1": nil, "remote-2": nil})
	// The plan of the invalid commit fails the same way, on atoll/plan.
	if code, out := runPlan(t, merge, bad, "--repo", r.work, "--path", "fleet", "--post-status",
		"--status-provider", "gitea", "--status-url", gitea.APIURL, "--status-token-file", tokenFile); code != 2 {
		t.Errorf("atoll plan of the invalid commit: exit code %d, want 2:\n%s", code, out)
	}
	if s := r.latest(bad, planContext); s.State != "failure" || !regexp.MustCompile(`^invalid fleet declarations: head: fleet/remote-1\.yaml:\d+: `).MatchString(s.Description) {
		t.Errorf("%s on the invalid commit = %q %q, want failure naming head: fleet/remote-1.yaml:LINE", planContext, s.State, s.Description)
	}

	// 5. Two quick pushes seen by one fetch: the first is superseded by the
	// second, which applies.
	first := r.commitFiles(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1", "first")}, "taint remote-1 first")
	second := r.commitFiles(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1", "second")}, "taint remote-1 second")
	fetch()
	testenv.WaitFor(t, time.Minute, "remote-1 tainted second", func(ctx context.Context) (bool, error) {
		return nodeTaints(ctx, "remote-1", "second")
	})
	r.waitStatus(second, syncContext, "success", time.Minute)
	s = r.waitStatus(first, syncContext, "success", time.Minute)
	if by, ok := strings.CutPrefix(s.Description, "superseded by "); !ok || len(by) < 7 || !strings.HasPrefix(second, by) {
		t.Errorf("status of the first quick push = %q, want \"superseded by\" an abbreviation of %s", s.Description, second)
	}

	// 6. Revert the pull request's merge: remote-2 is drained and removed,
	// success on the revert commit.
	revertArgs := []string{"revert", "--no-edit"}
	if parents := strings.Fields(r.git("rev-list", "--parents", "-n", "1", merge)); len(parents) > 2 {
		revertArgs = append(revertArgs, "-m", "1")
	}
	r.git(append(revertArgs, merge)...)
	r.git("push", "-q", "origin", "main")
	revert := r.git("rev-parse", "HEAD")
	fetch()
	testenv.WaitFor(t, 2*time.Minute, "remote-2 removed", func(ctx context.Context) (bool, error) {
		_, err := master.CoreV1().Nodes().Get(ctx, "remote-2", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	r.waitStatus(revert, syncContext, "success", time.Minute)
	checkNodes(t, map[string][]string{"remote-1": {"second"}})
}

// commitFiles writes files, commits them and pushes main; it returns the SHA.
func (r *repo) commitFiles(files map[string]string, msg string) string {
	r.t.Helper()
	return r.commitFilesTo("main", files, msg)
}

// commitFilesTo writes files, commits them on the checked-out branch and
// pushes it as branch; it returns the SHA.
func (r *repo) commitFilesTo(branch string, files map[string]string, msg string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	r.git("push", "-q", "origin", "HEAD:"+branch)
	return r.git("rev-parse", "HEAD")
}

// waitStatus waits until the newest status of sha in statusContext is state
// (read through Gitea's statuses API) and returns it.
func (r *repo) waitStatus(sha, statusContext, state string, timeout time.Duration) giteaStatus {
	r.t.Helper()
	var s giteaStatus
	testenv.WaitFor(r.t, timeout, fmt.Sprintf("%s %s on %s", statusContext, state, sha[:7]), func(context.Context) (bool, error) {
		s = r.latest(sha, statusContext)
		return s.State == state, nil
	})
	return s
}

// runPlan runs `atoll plan ARGS BASE HEAD` in the clone and returns its exit
// code and combined output.
func runPlan(t *testing.T, base, head string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, atollBin, append(append([]string{"plan"}, args...), base, head)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("atoll plan: %v\n%s", err, out)
	return -1, ""
}

// checkNodes asserts that the master has exactly the Atoll nodes of want,
// each with the NoSchedule taint keys listed.
func checkNodes(t *testing.T, want map[string][]string) {
	t.Helper()
	ctx := testenv.Context(t)
	l, err := master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, n := range l.Items {
		got[n.Name] = userTaints(&n)
	}
	if len(got) != len(want) {
		t.Errorf("Atoll nodes = %v, want %v", got, want)
		return
	}
	for name, keys := range want {
		g, ok := got[name]
		if !ok || !slices.Equal(g, keys) {
			t.Errorf("node %s taints = %v (present %v), want %v", name, g, ok, keys)
		}
	}
}

// nodeTaints reports whether node name carries exactly the declared
// taint keys.
func nodeTaints(ctx context.Context, name string, keys ...string) (bool, error) {
	n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return slices.Equal(userTaints(n), keys), nil
}

// userTaints are the keys of a node's NoSchedule taints with value "yes"
// (the ones secretCluster declares), sorted.
func userTaints(n *corev1.Node) []string {
	var keys []string
	for _, t := range n.Spec.Taints {
		if t.Value == "yes" && t.Effect == corev1.TaintEffectNoSchedule {
			keys = append(keys, t.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

// secretCluster declares a Cluster whose credentials are the Secret
// fleettest.KubeconfigSecrets makes, with a NoSchedule taint per key.
func secretCluster(name string, taints ...string) string {
	return fleettest.ClusterYAML(name, "secret:"+fleettest.SecretName(name), taints...)
}

// tryAPI calls Gitea's API as the admin with a JSON body and returns the
// HTTP status.
func tryAPI(ctx context.Context, method, path, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, gitea.APIURL+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "token "+gitea.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
