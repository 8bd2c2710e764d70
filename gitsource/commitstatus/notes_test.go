package commitstatus

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/test/gitserver"
)

// gitServer is a Repo served with push enabled behind basic auth.
type gitServer struct {
	*gitserver.Repo
	t   *testing.T
	URL string // repository URL
}

const (
	gitUser = "atoll"
	gitPass = "push-s3cret"
)

func startGitServer(t *testing.T) *gitServer {
	t.Helper()
	repo := gitserver.NewRepo(t)
	srv := gitserver.Start(t, repo.Root, gitserver.Options{Username: gitUser, Password: gitPass, Push: true})
	return &gitServer{Repo: repo, t: t, URL: srv.RepoURL(repo)}
}

// commit makes an empty commit in the clone, pushes it and returns its SHA.
func (g *gitServer) commit(msg string) string {
	g.t.Helper()
	sha := g.Commit(nil, msg)
	g.Push("main")
	return sha
}

// note reads the note of sha the way a user would: fetch the notes ref
// into the clone and `git notes --ref=atoll show`.
func (g *gitServer) note(sha string) Note {
	g.t.Helper()
	g.Git(g.Work, "fetch", "-q", "origin", "+refs/notes/atoll:refs/notes/atoll")
	out := g.Git(g.Work, "notes", "--ref=atoll", "show", sha)
	var n Note
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		g.t.Fatalf("note of %s is not JSON: %v\n%s", sha, err, out)
	}
	return n
}

func newTestNotes(t *testing.T, g *gitServer, pass string) *Notes {
	t.Helper()
	n, err := NewNotes(NotesConfig{
		Remote: gitsource.GitConfig{URL: g.URL, Username: gitUser, Password: pass, AllowInsecureHTTP: true, Timeout: 20 * time.Second},
		Dir:    t.TempDir(),
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotesAgainstGitHTTPBackend(t *testing.T) {
	g := startGitServer(t)
	a := g.commit("add cern-001")
	b := g.commit("add cern-002")
	ctx := context.Background()
	w := newTestNotes(t, g, gitPass)

	steps := []Status{
		{Revision: a, Context: "atoll/sync", State: StatePending, Description: "applying"},
		{Revision: a, Context: "atoll/sync", State: StateSuccess, Description: "1 node ready · +1 added", TargetURL: "https://atoll.example/r/a"},
		{Revision: a, Context: "atoll/plan", State: StateSuccess, Description: "+1 node cern-001"},
	}
	for _, s := range steps {
		if err := w.Report(ctx, s); err != nil {
			t.Fatalf("Report(%s %s): %v", s.Context, s.State, err)
		}
	}
	want := Note{Statuses: map[string]NoteStatus{
		"atoll/sync": {State: StateSuccess, Description: "1 node ready · +1 added", TargetURL: "https://atoll.example/r/a"},
		"atoll/plan": {State: StateSuccess, Description: "+1 node cern-001"},
	}}
	if got := g.note(a); !reflect.DeepEqual(got, want) {
		t.Errorf("note of %s = %+v, want %+v", a, got, want)
	}

	// Someone else adds a note with the CLI and pushes; a second writer
	// with its own work repository adds one; nothing is lost.
	g.Git(g.Work, "notes", "--ref=atoll", "add", "-m", "hand-written, not JSON", b)
	g.Git(g.Work, "push", "-q", "origin", "refs/notes/atoll")
	w2 := newTestNotes(t, g, gitPass)
	if err := w2.Report(ctx, Status{Revision: b, Context: "atoll/sync", State: StateFailure, Description: "clusters/bad.yaml:3: unknown field"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Report(ctx, Status{Revision: a, Context: "atoll/sync", State: StateSuccess, Description: "superseded by " + short(b)}); err != nil {
		t.Fatal(err)
	}
	if got := g.note(b).Statuses["atoll/sync"]; got.State != StateFailure {
		t.Errorf("note of b = %+v, want failure", got)
	}
	if got := g.note(a); len(got.Statuses) != 2 || got.Statuses["atoll/sync"].Description != "superseded by "+short(b) {
		t.Errorf("note of a = %+v", got)
	}
	// Reporting the same status again does not add a notes commit.
	before := g.Git(g.Bare, "rev-parse", "refs/notes/atoll")
	if err := w.Report(ctx, Status{Revision: a, Context: "atoll/plan", State: StateSuccess, Description: "+1 node cern-001"}); err != nil {
		t.Fatal(err)
	}
	if after := g.Git(g.Bare, "rev-parse", "refs/notes/atoll"); after != before {
		t.Errorf("an unchanged note made a new notes commit")
	}
}

func TestNotesErrors(t *testing.T) {
	g := startGitServer(t)
	sha := g.commit("first")
	s := Status{Revision: sha, Context: "atoll/sync", State: StateSuccess}

	t.Run("wrong password is terminal and not echoed", func(t *testing.T) {
		err := newTestNotes(t, g, "wrong-pa55word").Report(context.Background(), s)
		if !IsTerminal(err) {
			t.Fatalf("err = %v, want terminal", err)
		}
		if strings.Contains(err.Error(), "wrong-pa55word") {
			t.Errorf("error leaks the password: %v", err)
		}
	})
	t.Run("unreachable server is retryable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL + "/fleet.git"
		dead.Close()
		n, err := NewNotes(NotesConfig{Remote: gitsource.GitConfig{URL: url, AllowInsecureHTTP: true, Timeout: 5 * time.Second}, Dir: t.TempDir(), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Report(context.Background(), s); !IsRetryable(err) {
			t.Errorf("err = %v, want retryable", err)
		}
	})
	t.Run("config checks", func(t *testing.T) {
		for _, cfg := range []NotesConfig{
			{Remote: gitsource.GitConfig{URL: g.URL}, Dir: t.TempDir()},                                               // http without AllowInsecureHTTP
			{Remote: gitsource.GitConfig{URL: "https://u:p@example.com/r.git"}, Dir: t.TempDir()},                     // password in URL
			{Remote: gitsource.GitConfig{URL: "ssh://git@example.com/r.git"}, Dir: t.TempDir()},                       // no known_hosts
			{Remote: gitsource.GitConfig{URL: "/srv/git/fleet.git"}, Dir: t.TempDir()},                                // local without AllowLocal
			{Remote: gitsource.GitConfig{URL: g.URL, AllowInsecureHTTP: true}},                                        // no Dir
			{Remote: gitsource.GitConfig{URL: g.URL, AllowInsecureHTTP: true}, Dir: t.TempDir(), Ref: "refs/heads/x"}, // not a notes ref
		} {
			if _, err := NewNotes(cfg); !IsConfigError(err) {
				t.Errorf("NewNotes(%+v) = %v, want ErrInvalidConfig", cfg.Remote.URL, err)
			}
		}
	})
}

// TestNotesSSHTimeout: over SSH, where go-git ignores the context during
// the handshake, a server that accepts and stalls costs one Timeout, not
// a hang, and the failure is retryable.
func TestNotesSSHTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	})
	addr := l.Addr().String()
	_, clientKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostPub, err := ssh.NewPublicKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNotes(NotesConfig{
		Remote: gitsource.GitConfig{
			URL:           "ssh://git@" + addr + "/fleet.git",
			SSHPrivateKey: pem.EncodeToMemory(block),
			KnownHosts:    []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostPub) + "\n"),
			Timeout:       300 * time.Millisecond,
		},
		Dir:    t.TempDir(),
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- n.Report(context.Background(), Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess})
	}()
	select {
	case err := <-done:
		if !IsRetryable(err) {
			t.Errorf("err = %v, want retryable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Report over SSH to a stalled server still running after 20s with a 300ms timeout")
	}
}
