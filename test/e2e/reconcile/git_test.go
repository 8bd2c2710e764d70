package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// runArgs are the flags of an `atoll run` replica following g, serving
// HTTP on addr and metrics on metricsAddr.
func runArgs(t *testing.T, g *gitRepo, ns, identity, addr, metricsAddr string, extra ...string) []string {
	return append([]string{"run", "--repo", g.URL, "--ref", "main", "--path", "fleet", "--interval", "1s", "--allow-insecure-http",
		"--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns, "--http-addr", addr, "--metrics-addr", metricsAddr, "--cache-dir", t.TempDir(),
		"--node-ip", "127.0.0.1", "--drain-timeout", "1m", "--identity", identity,
		"--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s", "--log-level", "info"}, extra...)
}

// waitOutcome waits until the stored status says rev reached state.
func waitOutcome(t *testing.T, ns, rev string, state reconcile.CommitState, timeout time.Duration) *reconcile.FleetStatus {
	t.Helper()
	var st *reconcile.FleetStatus
	testenv.WaitFor(t, timeout, "revision "+rev[:8]+" "+string(state), func(ctx context.Context) (bool, error) {
		var err error
		st, err = reconcile.ReadStatus(ctx, master, ns)
		return err == nil && st.Revision == rev && st.State == state, err
	})
	return st
}

func secretCluster(name string, taints ...string) string {
	return fleettest.ClusterYAML(name, "secret:"+fleettest.SecretName(name), taints...)
}

// TestGit: `atoll run` following a repository served by git http-backend.
func TestGit(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	fleettest.KubeconfigSecrets(t, master, ns, env.Remotes)
	g := newGitRepo(t)
	c1 := g.commit(map[string]string{"fleet/README.md": "fleet\n", "fleet/remote-1.yaml": secretCluster("remote-1")}, "add remote-1")
	fleettest.StartAtoll(t, env, atollBin, "run-git", runArgs(t, g, ns, "git-a", fleettest.FreeAddr(t), fleettest.FreeAddr(t))...)
	testenv.WaitFor(t, time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
	waitOutcome(t, ns, c1, reconcile.StateSuccess, 30*time.Second)

	// Push adding a cluster: its node appears.
	c2 := g.commit(map[string]string{"fleet/remote-2.yaml": secretCluster("remote-2")}, "add remote-2")
	testenv.WaitFor(t, time.Minute, "remote-2 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-2") })
	if st := waitOutcome(t, ns, c2, reconcile.StateSuccess, 30*time.Second); !strings.Contains(st.Description, "2 nodes ready") {
		t.Errorf("description = %q", st.Description)
	}
	app := fleettest.Namespace(t, master, "e2e-git-app")
	deployment(t, app, "web", 2, "remote-2")
	testenv.WaitFor(t, time.Minute, "2 pods Running, some on remote-2", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		return err == nil && len(pods) == 2 && anyOn(pods, "remote-2"), err
	})

	// git revert: the node is drained and removed.
	g.git("revert", "--no-edit", "HEAD")
	g.push()
	c3 := g.git("rev-parse", "HEAD")
	testenv.WaitFor(t, 2*time.Minute, "remote-2 gone", func(ctx context.Context) (bool, error) { return fleettest.NodeGone(ctx, master, "remote-2") })
	testenv.WaitFor(t, time.Minute, "2 pods Running on remote-1", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, app, "web")
		return err == nil && len(pods) == 2 && allOn(pods, "remote-1"), err
	})
	waitOutcome(t, ns, c3, reconcile.StateSuccess, 30*time.Second)

	// Revert the revert: it is back.
	g.git("revert", "--no-edit", "HEAD")
	g.push()
	c4 := g.git("rev-parse", "HEAD")
	testenv.WaitFor(t, time.Minute, "remote-2 Ready again", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-2") })
	waitOutcome(t, ns, c4, reconcile.StateSuccess, 30*time.Second)

	// Tainting every node NoExecute (evicting every pod) is refused by the
	// breaker: the nodes stay untainted, the pods where they are.
	drain := func(name string) string {
		return strings.Replace(secretCluster(name, "drain"), "effect: NoSchedule", "effect: NoExecute", 1)
	}
	c4b := g.commit(map[string]string{"fleet/remote-1.yaml": drain("remote-1"), "fleet/remote-2.yaml": drain("remote-2")}, "drain every cluster")
	if st := waitOutcome(t, ns, c4b, reconcile.StateFailure, time.Minute); !strings.Contains(st.Description, "cordon or taint NoExecute 2 of 2 live nodes") {
		t.Errorf("refusal = %q", st.Description)
	}
	for _, name := range []string{"remote-1", "remote-2"} {
		n, err := master.CoreV1().Nodes().Get(testenv.Context(t), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == "drain" {
				t.Errorf("node %s has the refused revision's taint %v", name, taint)
			}
		}
	}

	// A commit removing every cluster is refused by the breaker.
	c5 := g.commit(map[string]string{"fleet/remote-1.yaml": "", "fleet/remote-2.yaml": ""}, "remove every cluster")
	st := waitOutcome(t, ns, c5, reconcile.StateFailure, time.Minute)
	if !strings.Contains(st.Description, "breaker") || !strings.Contains(st.Description, reconcile.AllowRemovalTrailer) {
		t.Errorf("refusal = %q", st.Description)
	}
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || len(nodes) != 2 {
		t.Errorf("nodes after a refused revision = %v (%v), want both", nodes, err)
	}

	// With the trailer it applies.
	c6 := g.commit(nil, "remove every cluster\n\nAtoll-Allow-Removal: 2")
	testenv.WaitFor(t, 3*time.Minute, "every node gone", func(ctx context.Context) (bool, error) {
		nodes, err := atollNodes(ctx)
		return err == nil && len(nodes) == 0, err
	})
	waitOutcome(t, ns, c6, reconcile.StateSuccess, 30*time.Second)

	// Every outcome is also an Event.
	evs, err := master.CoreV1().Events(ns).List(testenv.Context(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var applied, failed int
	for _, e := range evs.Items {
		switch {
		case e.Reason == "RevisionApplied" && e.InvolvedObject.Name == reconcile.StatusConfigMap:
			applied++
		case e.Reason == "RevisionFailed" && strings.Contains(e.Message, "breaker"):
			failed++
		}
	}
	if applied < 5 || failed != 2 {
		t.Errorf("events: %d RevisionApplied (want 5: c1-c4, c6), %d RevisionFailed by the breaker (want 2: c4b, c5)", applied, failed)
	}
}

// TestLeaderElection: two replicas, one leader runs nodes; kill it and the
// other takes over.
func TestLeaderElection(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	fleettest.KubeconfigSecrets(t, master, ns, env.Remotes)
	g := newGitRepo(t)
	g.commit(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1")}, "add remote-1")
	secret := filepath.Join(t.TempDir(), "webhook-secret")
	writeFile(t, secret, "s3cret\n")
	// Polling is off (1h): after the first fetch, only the webhook fetches.
	addrs := map[string]string{"a": fleettest.FreeAddr(t), "b": fleettest.FreeAddr(t)}
	metricsAddrs := map[string]string{"a": fleettest.FreeAddr(t), "b": fleettest.FreeAddr(t)}
	replicas := map[string]*fleettest.Atoll{}
	for _, id := range []string{"a", "b"} {
		args := runArgs(t, g, ns, id, addrs[id], metricsAddrs[id], "--interval", "1h", "--webhook-secret-file", secret, "--profiling")
		replicas[id] = fleettest.StartAtoll(t, env, atollBin, "leader-"+id, args...)
	}
	holder := func(ctx context.Context) (string, error) {
		l, err := master.CoordinationV1().Leases(ns).Get(ctx, "atoll", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return "", err
		}
		return *l.Spec.HolderIdentity, nil
	}
	var leader string
	testenv.WaitFor(t, time.Minute, "a leader", func(ctx context.Context) (bool, error) {
		h, err := holder(ctx)
		leader = h
		return h == "a" || h == "b", err
	})
	other := map[string]string{"a": "b", "b": "a"}[leader]
	testenv.WaitFor(t, time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
	// The other replica says it stands by once it has read the Lease (at
	// most a retry period after it started), and never runs nodes.
	testenv.WaitFor(t, 30*time.Second, "replica "+other+" to stand by", func(context.Context) (bool, error) {
		return strings.Contains(replicas[other].Output(), "standing by"), nil
	})
	if out := replicas[other].Output(); strings.Contains(out, "virtual node added") {
		t.Errorf("replica %s (not leader) ran nodes:\n%s", other, out)
	}
	testenv.WaitFor(t, 30*time.Second, "/readyz of both", func(ctx context.Context) (bool, error) {
		l, err := httpGet(ctx, "http://"+addrs[leader]+"/readyz")
		s, err2 := httpGet(ctx, "http://"+addrs[other]+"/readyz")
		return strings.Contains(l, "leader") && strings.Contains(s, "standby"), errors.Join(err, err2)
	})
	if m, err := httpGet(testenv.Context(t), "http://"+metricsAddrs[leader]+"/metrics"); err != nil || !strings.Contains(m, "atoll_reconcile_passes_total") || !strings.Contains(m, "atoll_reconcile_nodes") {
		t.Errorf("leader /metrics lacks the reconciler's metrics (%v)", err)
	}
	// The public port (the webhook's) serves neither metrics nor profiles.
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if code := httpStatus(t, "http://"+addrs[leader]+path); code != http.StatusNotFound {
			t.Errorf("%s on --http-addr: status %d, want 404", path, code)
		}
	}
	if code := httpStatus(t, "http://"+metricsAddrs[leader]+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("/debug/pprof/ on --metrics-addr with --profiling: status %d, want 200", code)
	}
	if h, err := httpGet(testenv.Context(t), "http://"+addrs[other]+"/healthz"); err != nil || !strings.Contains(h, "ok") {
		t.Errorf("standby /healthz = %q, %v", h, err)
	}

	// A standby takes no push (it would drop it): 503, so that the git host
	// delivers it again.
	if code, err := fleettest.PostWebhook(testenv.Context(t), "http://"+addrs[other]+"/hooks/git", "s3cret"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("webhook to the standby = %d, %v; want 503", code, err)
	}
	if code, err := fleettest.PostWebhook(testenv.Context(t), "http://"+addrs[leader]+"/hooks/git", "s3cret"); err != nil || code != http.StatusAccepted {
		t.Errorf("webhook to the leader = %d, %v; want 202", code, err)
	}

	// Kill the leader: the other takes over and runs the nodes.
	replicas[leader].Kill()
	testenv.WaitFor(t, time.Minute, "replica "+other+" to lead", func(ctx context.Context) (bool, error) {
		h, err := holder(ctx)
		return h == other, err
	})
	rev := g.commit(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1", "after-failover")}, "taint remote-1")
	// The push webhook makes the new leader fetch at once.
	if code, err := fleettest.PostWebhook(testenv.Context(t), "http://"+addrs[other]+"/hooks/git", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("webhook with a wrong token = %d, %v; want 401", code, err)
	}
	if code, err := fleettest.PostWebhook(testenv.Context(t), "http://"+addrs[other]+"/hooks/git", "s3cret"); err != nil || code != http.StatusAccepted {
		t.Fatalf("webhook = %d, %v; want 202", code, err)
	}
	testenv.WaitFor(t, time.Minute, "the new leader to apply a taint", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, "remote-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tt := range n.Spec.Taints {
			if tt.Key == "after-failover" {
				return true, nil
			}
		}
		return false, nil
	})
	waitOutcome(t, ns, rev, reconcile.StateSuccess, time.Minute)
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || len(nodes) != 1 {
		t.Errorf("nodes = %v (%v), want only remote-1", nodes, err)
	}
}

// httpStatus returns the status code of a GET of url.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testenv.Context(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status)
	}
	return string(b), err
}

// TestSignedCommits: `atoll run --verify-ssh-allowed-signers` applies a
// commit signed by an allowed key; an unsigned commit after it is refused:
// its status is a failure (a git note here) and nothing of it is applied.
func TestSignedCommits(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	fleettest.KubeconfigSecrets(t, master, ns, env.Remotes)
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "signer")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada@example.com", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(keyDir, "allowed_signers")
	writeFile(t, allowed, `ada@example.com namespaces="git" `+string(pub))

	g := newGitRepo(t)
	g.git("config", "gpg.format", "ssh")
	g.git("config", "user.signingkey", key)
	g.git("config", "commit.gpgsign", "true")
	signed := g.commit(map[string]string{"fleet/remote-1.yaml": secretCluster("remote-1")}, "add remote-1, signed")
	fleettest.StartAtoll(t, env, atollBin, "run-signed", runArgs(t, g, ns, "signed", fleettest.FreeAddr(t), fleettest.FreeAddr(t),
		"--verify-ssh-allowed-signers", allowed)...)
	testenv.WaitFor(t, time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "remote-1") })
	waitOutcome(t, ns, signed, reconcile.StateSuccess, 30*time.Second)

	g.git("config", "commit.gpgsign", "false")
	unsigned := g.commit(map[string]string{"fleet/remote-2.yaml": secretCluster("remote-2")}, "add remote-2, unsigned")
	testenv.WaitFor(t, time.Minute, "a failure note on the unsigned commit", func(ctx context.Context) (bool, error) {
		g.git("fetch", "-q", "-f", "origin", "refs/notes/atoll:refs/notes/atoll")
		note := g.gitMaybe("notes", "--ref", "atoll", "show", unsigned)
		var n struct {
			Statuses map[string]struct{ State, Description string }
		}
		if note == "" || json.Unmarshal([]byte(note), &n) != nil {
			return false, nil
		}
		st := n.Statuses["atoll"]
		return st.State == "failure" && strings.Contains(st.Description, "refused: verify commit "+unsigned+": commit not signed"), nil
	})
	if nodes, err := atollNodes(testenv.Context(t)); err != nil || len(nodes) != 1 {
		t.Errorf("nodes after the unsigned commit = %v (%v), want remote-1 only", nodes, err)
	}
	st, err := reconcile.ReadStatus(testenv.Context(t), master, ns)
	if err != nil || st.Applied != signed {
		t.Errorf("status = %+v (%v), want %s still applied", st, err, signed[:8])
	}
}
