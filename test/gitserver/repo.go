package gitserver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Repo is a bare "server" repository fleet.git under Root, branch main,
// and a working clone Work whose origin is the bare repository's path.
// Commits carry fixed identities (author "Ada Author <ada@example.com>",
// committer "Carl Committer <carl@example.com>") and dates one minute
// apart from 2026-01-01, so hashes are stable within a test. The bare
// repository lets clients fetch any reachable commit by SHA.
type Repo struct {
	Root string // served directory (give it to Start)
	Bare string // Root/fleet.git
	Work string // working clone

	t     testing.TB
	home  string
	clock time.Time
}

// NewRepo creates an empty Repo in a temporary directory.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	base := t.TempDir()
	r := &Repo{
		Root:  filepath.Join(base, "srv"),
		Work:  filepath.Join(base, "work"),
		t:     t,
		home:  base,
		clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	r.Bare = filepath.Join(r.Root, "fleet.git")
	for _, d := range []string{r.Bare, r.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.Git(r.Bare, "init", "-q", "--bare", "-b", "main")
	r.Git(r.Bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
	r.Git(r.Work, "init", "-q", "-b", "main")
	r.Git(r.Work, "remote", "add", "origin", r.Bare)
	return r
}

// Env is the environment for the git CLI in r: the process's, isolated
// from the machine's git configuration, with the fixed identities and no
// prompts or editors.
func (r *Repo) Env() []string {
	return append(os.Environ(),
		"HOME="+r.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(r.home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Ada Author", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Carl Committer", "GIT_COMMITTER_EMAIL=carl@example.com",
		"GIT_TERMINAL_PROMPT=0", "GIT_EDITOR=true",
	)
}

// Git runs git with args in dir (r.Work, r.Bare or another directory) and
// returns its trimmed standard output; it fails the test if git fails.
func (r *Repo) Git(dir string, args ...string) string {
	r.t.Helper()
	return r.run(dir, nil, args...)
}

func (r *Repo) run(dir string, env []string, args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(r.Env(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// Write writes files (path -> content; "" content deletes the file) into
// the working clone.
func (r *Repo) Write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Work, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Tick advances the repository's clock by a minute and returns it: the
// date of the next commit.
func (r *Repo) Tick() time.Time {
	r.clock = r.clock.Add(time.Minute)
	return r.clock
}

// Commit writes files, stages everything, commits (empty commits too) with
// msg at the next Tick and returns the SHA. extra goes before "commit",
// e.g. "-c", "gpg.format=ssh". It does not push.
func (r *Repo) Commit(files map[string]string, msg string, extra ...string) string {
	r.t.Helper()
	r.Write(files)
	r.Git(r.Work, "add", "-A")
	date := r.Tick().Format(time.RFC3339)
	args := append(append([]string{}, extra...), "commit", "-q", "--allow-empty", "-m", msg, "--date", date)
	r.run(r.Work, []string{"GIT_COMMITTER_DATE=" + date}, args...)
	return r.Git(r.Work, "rev-parse", "HEAD")
}

// Push runs `git push -q origin args...` in the working clone.
func (r *Repo) Push(args ...string) {
	r.t.Helper()
	r.Git(r.Work, append([]string{"push", "-q", "origin"}, args...)...)
}
