package gitea_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// api calls Gitea's REST API as the admin and decodes the JSON answer
// into out (if not nil). It fails the test unless the status is want.
func api(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, gitea.APIURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+gitea.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode: %v\n%s", method, path, err, data)
		}
	}
}

// repo is a Gitea repository with a local clone that pushes to it.
type repo struct {
	t     *testing.T
	owner string
	name  string
	work  string
}

// URL is the clone URL (no credentials in it).
func (r *repo) URL() string { return fmt.Sprintf("%s/%s/%s.git", gitea.URL, r.owner, r.name) }

func newRepo(t *testing.T, name string) *repo {
	t.Helper()
	api(t, http.MethodPost, "/user/repos", map[string]any{"name": name, "default_branch": "main", "private": false}, nil, http.StatusCreated)
	r := &repo{t: t, owner: gitea.AdminUser, name: name, work: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("remote", "add", "origin", r.URL())
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The token travels in a header, never in the URL or the config.
	full := append([]string{"-c", "http.extraHeader=Authorization: token " + gitea.Token}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = r.work
	home := filepath.Join(r.work, ".home")
	cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// commit writes a file, commits, pushes main and returns the SHA.
func (r *repo) commit(file, content, msg string) string {
	r.t.Helper()
	p := filepath.Join(r.work, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	r.git("push", "-q", "origin", "main")
	return r.git("rev-parse", "HEAD")
}

// giteaStatus is one entry of GET /repos/{owner}/{repo}/commits/{sha}/statuses.
type giteaStatus struct {
	ID          int64  `json:"id"`
	State       string `json:"status"`
	Context     string `json:"context"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url"`
}

// statuses reads every status of sha back from Gitea, newest first.
func (r *repo) statuses(sha string) []giteaStatus {
	r.t.Helper()
	var out []giteaStatus
	api(r.t, http.MethodGet, fmt.Sprintf("/repos/%s/%s/commits/%s/statuses?limit=50", r.owner, r.name, sha), nil, &out, http.StatusOK)
	return out
}

// latest is the newest status of sha in context ctx (zero if none).
func (r *repo) latest(sha, context string) giteaStatus {
	r.t.Helper()
	var best giteaStatus
	for _, s := range r.statuses(sha) {
		if s.Context == context && s.ID > best.ID {
			best = s
		}
	}
	return best
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
