package gitsource

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger writes through t.Log so output shows only for failing tests.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Ada Author", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Carl Committer", "GIT_COMMITTER_EMAIL=carl@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// fixture is a bare "server" repository under root plus a working clone
// that pushes to it by path.
type fixture struct {
	t     *testing.T
	root  string // served directory (GIT_PROJECT_ROOT)
	bare  string // root/fleet.git
	work  string
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, root: filepath.Join(base, "srv"), work: filepath.Join(base, "work"), clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.bare = filepath.Join(f.root, "fleet.git")
	for _, d := range []string{f.bare, f.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, f.bare, "init", "-q", "--bare", "-b", "main")
	runGit(t, f.bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
	runGit(t, f.bare, "config", "http.receivepack", "false")
	runGit(t, f.work, "init", "-q", "-b", "main")
	runGit(t, f.work, "remote", "add", "origin", f.bare)
	return f
}

// write writes files (path -> content; "" content deletes) into the work tree.
func (f *fixture) write(files map[string]string) {
	f.t.Helper()
	for name, content := range files {
		p := filepath.Join(f.work, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				f.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// commit writes files, commits them (with extra git -c args before
// "commit", e.g. signing config) and returns the SHA.
func (f *fixture) commit(files map[string]string, msg string, extra ...string) string {
	f.t.Helper()
	f.write(files)
	runGit(f.t, f.work, "add", "-A")
	f.clock = f.clock.Add(time.Minute)
	date := f.clock.Format(time.RFC3339)
	args := append(append([]string{}, extra...), "commit", "-q", "--allow-empty", "-m", msg, "--date", date)
	cmd := exec.Command("git", args...)
	cmd.Dir = f.work
	cmd.Env = append(gitEnv(f.work), "GIT_COMMITTER_DATE="+date)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("git commit: %v\n%s", err, out)
	}
	return runGit(f.t, f.work, "rev-parse", "HEAD")
}

func (f *fixture) push(args ...string) {
	f.t.Helper()
	runGit(f.t, f.work, append([]string{"push", "-q", "origin"}, args...)...)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// syncWriter serializes writes to a buffer shared with a process's output.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
