package reconcile_test

import (
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// newGitRepo serves an empty bare repository fleet.git over loopback HTTP
// with the real git http-backend (push enabled), and clones it.
func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "srv")
	g := &gitRepo{t: t, work: base, home: base}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	g.git("init", "-q", "--bare", "-b", "main", filepath.Join(root, "fleet.git"))
	g.git("-C", filepath.Join(root, "fleet.git"), "config", "http.receivepack", "true")
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	srv := httptest.NewServer(&cgi.Handler{
		Path: strings.TrimSpace(string(execPath)) + "/git-http-backend",
		Env: []string{
			"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + root, "PATH=" + os.Getenv("PATH"),
			// git http-backend allows pushes only from an authenticated user.
			"REMOTE_USER=e2e",
		},
	})
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/fleet.git"
	g.git("clone", "-q", g.URL, "work")
	g.work = filepath.Join(base, "work")
	g.git("checkout", "-q", "-b", "main")
	return g
}
