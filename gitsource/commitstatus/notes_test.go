package commitstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll-dev/atoll/gitsource"
)

// gitServer is a bare repository served by the real git http-backend
// (smart HTTP, push enabled) behind basic auth, plus a working clone.
type gitServer struct {
	t          *testing.T
	URL        string // repository URL
	bare, work string
}

const (
	gitUser = "atoll"
	gitPass = "push-s3cret"
)

func startGitServer(t *testing.T) *gitServer {
	t.Helper()
	base := t.TempDir()
	g := &gitServer{t: t, bare: filepath.Join(base, "srv", "fleet.git"), work: filepath.Join(base, "work")}
	for _, d := range []string{g.bare, g.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g.git(g.bare, "init", "-q", "--bare", "-b", "main")
	g.git(g.bare, "config", "http.receivepack", "true")
	g.git(g.work, "init", "-q", "-b", "main")
	g.git(g.work, "remote", "add", "origin", g.bare)

	execPath := strings.TrimSpace(g.git(base, "--exec-path"))
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + filepath.Dir(g.bare),
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + base,
			"PATH=" + os.Getenv("PATH"),
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != gitUser || p != gitPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/fleet.git"
	return g
}

func (g *gitServer) git(dir string, args ...string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	home := filepath.Dir(g.work)
	cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// commit makes an empty commit in the clone, pushes it and returns its SHA.
func (g *gitServer) commit(msg string) string {
	g.t.Helper()
	g.git(g.work, "commit", "-q", "--allow-empty", "-m", msg)
	g.git(g.work, "push", "-q", "origin", "main")
	return strings.TrimSpace(g.git(g.work, "rev-parse", "HEAD"))
}

// note reads the note of sha the way a user would: fetch the notes ref
// into the clone and `git notes --ref=atoll show`.
func (g *gitServer) note(sha string) Note {
	g.t.Helper()
	g.git(g.work, "fetch", "-q", "origin", "+refs/notes/atoll:refs/notes/atoll")
	out := g.git(g.work, "notes", "--ref=atoll", "show", sha)
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
	g.git(g.work, "notes", "--ref=atoll", "add", "-m", "hand-written, not JSON", b)
	g.git(g.work, "push", "-q", "origin", "refs/notes/atoll")
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
	before := g.git(g.bare, "rev-parse", "refs/notes/atoll")
	if err := w.Report(ctx, Status{Revision: a, Context: "atoll/plan", State: StateSuccess, Description: "+1 node cern-001"}); err != nil {
		t.Fatal(err)
	}
	if after := g.git(g.bare, "rev-parse", "refs/notes/atoll"); after != before {
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
