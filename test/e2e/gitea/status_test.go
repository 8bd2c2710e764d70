package gitea_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/gitsource/commitstatus"
)

// startQueue runs the pipeline cmd wires: Queue -> Dedupe -> writer.
func startQueue(t *testing.T, w commitstatus.Reporter) *commitstatus.Queue {
	t.Helper()
	q, err := commitstatus.NewQueue(commitstatus.QueueConfig{Reporter: commitstatus.NewDedupe(w, 0), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queue Run: %v", err)
		}
	})
	return q
}

func TestGiteaWriterLifecycle(t *testing.T) {
	r := newRepo(t, "fleet")
	first := r.commit("clusters/cern-001.yaml", "kind: Cluster\n", "add cern-001")

	// The writer as `atoll run --status-provider gitea` builds it: API
	// base derived from the repository URL.
	w, p, err := commitstatus.New(commitstatus.Config{
		RepoURL:  r.URL(),
		Provider: commitstatus.ProviderGitea,
		Token:    gitea.Token,
		Logger:   testLogger(t),
	})
	if err != nil || p != commitstatus.ProviderGitea {
		t.Fatalf("New = %T, %s, %v", w, p, err)
	}
	q := startQueue(t, w)
	ctx := context.Background()
	report := func(s commitstatus.Status) {
		t.Helper()
		if err := q.Report(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// pending when picked up, then success with the counts.
	report(commitstatus.Status{Revision: first, Context: "atoll/sync", State: commitstatus.StatePending, Description: "applying"})
	eventually(t, "pending on the first commit", func() bool { return r.latest(first, "atoll/sync").State == "pending" })
	success := commitstatus.Status{Revision: first, Context: "atoll/sync", State: commitstatus.StateSuccess,
		Description: "1 node ready · +1 added", TargetURL: "http://127.0.0.1/atoll/status"}
	report(success)
	eventually(t, "success on the first commit", func() bool { return r.latest(first, "atoll/sync").State == "success" })
	got := r.latest(first, "atoll/sync")
	if got.Description != success.Description || got.TargetURL != success.TargetURL {
		t.Errorf("status read back = %+v, want description %q and target %q", got, success.Description, success.TargetURL)
	}

	// The same status again is not re-posted (dedupe); a plan status in
	// its own context is.
	report(success)
	plan := commitstatus.Status{Revision: first, Context: "atoll/plan", State: commitstatus.StateSuccess, Description: "+1 node cern-001"}
	report(plan)
	eventually(t, "plan status", func() bool { return r.latest(first, "atoll/plan").State == "success" })
	n := 0
	for _, s := range r.statuses(first) {
		if s.Context == "atoll/sync" && s.State == "success" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("Gitea holds %d success statuses for atoll/sync, want 1 (identical status re-posted)", n)
	}

	// An invalid commit fails, naming file and line; two quick pushes:
	// the first is superseded by the second, which is applied.
	bad := r.commit("clusters/bad.yaml", "kind: Cluster\nspec: {nope: 1}\n", "break it")
	report(commitstatus.Status{Revision: bad, Context: "atoll/sync", State: commitstatus.StateFailure,
		Description: "clusters/bad.yaml:2: unknown field \"nope\"; nothing changed"})
	eventually(t, "failure on the bad commit", func() bool { return r.latest(bad, "atoll/sync").State == "failure" })
	if d := r.latest(bad, "atoll/sync").Description; !strings.Contains(d, "clusters/bad.yaml:2") {
		t.Errorf("failure description %q does not name file and line", d)
	}
	skipped := r.commit("clusters/cern-002.yaml", "kind: Cluster\n", "add cern-002")
	applied := r.commit("clusters/bad.yaml", "kind: Cluster\n", "fix it")
	if err := commitstatus.Superseded(ctx, q, "atoll/sync", []string{skipped}, applied, ""); err != nil {
		t.Fatal(err)
	}
	report(commitstatus.Status{Revision: applied, Context: "atoll/sync", State: commitstatus.StateSuccess, Description: "2 nodes ready · +1 added"})
	eventually(t, "superseded status", func() bool { return r.latest(skipped, "atoll/sync").State == "success" })
	if d, want := r.latest(skipped, "atoll/sync").Description, "superseded by "+applied[:7]; d != want {
		t.Errorf("skipped commit's description = %q, want %q", d, want)
	}
	eventually(t, "success on the applied commit", func() bool { return r.latest(applied, "atoll/sync").State == "success" })
	// Gitea shows a status a moment before the queue forgets it.
	eventually(t, "queue drained", func() bool { return q.Len() == 0 })
}

func TestGiteaRefusesBadTokenWithoutLeakingIt(t *testing.T) {
	r := newRepo(t, "fleet-badtoken")
	sha := r.commit("README", "x\n", "init")
	const wrong = "0123456789abcdef0123456789abcdef01234567"
	w, _, err := commitstatus.New(commitstatus.Config{RepoURL: r.URL(), Provider: commitstatus.ProviderGitea, Token: wrong, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Report(context.Background(), commitstatus.Status{Revision: sha, Context: "atoll/sync", State: commitstatus.StateSuccess})
	if !commitstatus.IsTerminal(err) {
		t.Fatalf("err = %v, want terminal (401)", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error leaks the token: %v", err)
	}
	if len(r.statuses(sha)) != 0 {
		t.Errorf("a status was created with a wrong token")
	}
}

// The notes writer needs nothing but git: Gitea serves as a plain git
// server here, the token as the HTTP password.
func TestNotesOnGitea(t *testing.T) {
	r := newRepo(t, "fleet-notes")
	sha := r.commit("clusters/cern-001.yaml", "kind: Cluster\n", "add cern-001")
	w, p, err := commitstatus.New(commitstatus.Config{
		RepoURL:  r.URL(),
		Provider: commitstatus.ProviderNotes,
		Notes: commitstatus.NotesConfig{
			Remote: gitsource.GitConfig{Username: gitea.AdminUser, Password: gitea.Token, AllowInsecureHTTP: true},
			Dir:    t.TempDir(),
		},
		Logger: testLogger(t),
	})
	if err != nil || p != commitstatus.ProviderNotes {
		t.Fatalf("New = %T, %s, %v", w, p, err)
	}
	s := commitstatus.Status{Revision: sha, Context: "atoll/sync", State: commitstatus.StateSuccess, Description: "1 node ready"}
	if err := w.Report(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	r.git("fetch", "-q", "origin", "+refs/notes/atoll:refs/notes/atoll")
	var note commitstatus.Note
	if err := json.Unmarshal([]byte(r.git("notes", "--ref=atoll", "show", sha)), &note); err != nil {
		t.Fatal(err)
	}
	if got := note.Statuses["atoll/sync"]; got.State != commitstatus.StateSuccess || got.Description != "1 node ready" {
		t.Errorf("note = %+v", note)
	}
}
