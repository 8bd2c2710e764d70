package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// GiteaVersion is the Gitea release the commit-status e2e tests run. The
// cache is keyed by it.
const GiteaVersion = "v1.26.0"

// giteaModule is the Go module Gitea is built from.
const giteaModule = "code.gitea.io/gitea"

// GiteaBuild is a cached Gitea: the binary and the source tree it was built
// from, which a running Gitea needs as STATIC_ROOT_PATH (templates, locale
// files).
type GiteaBuild struct {
	Binary string
	Source string
}

// giteaDir is the cache directory of one Gitea version.
func giteaDir(cache string) string {
	return filepath.Join(cache, "gitea-"+GiteaVersion)
}

func findGitea(cache string) (GiteaBuild, error) {
	dir := giteaDir(cache)
	b := GiteaBuild{Binary: filepath.Join(dir, "bin", "gitea"), Source: filepath.Join(dir, "src")}
	for _, p := range []string{b.Binary, filepath.Join(b.Source, "options", "locale"), filepath.Join(b.Source, "templates")} {
		if _, err := os.Stat(p); err != nil {
			return GiteaBuild{}, fmt.Errorf("gitea %s is not built (%s missing): run the tests once with network access, or `make testenv`: %w", GiteaVersion, p, err)
		}
	}
	return b, nil
}

// FindGitea returns the cached Gitea, or an error saying how to build it.
func FindGitea() (GiteaBuild, error) {
	cache, err := CacheDir()
	if err != nil {
		return GiteaBuild{}, err
	}
	return findGitea(cache)
}

// BuildGitea builds Gitea GiteaVersion from the Go module proxy into the
// cache unless it is there already, and returns it. The module is copied
// into a writable directory and built there as the main module (so its own
// go.mod, replaces included, applies) with the tags `sqlite
// sqlite_unlock_notify`; the copy stays as the running Gitea's static root.
// Concurrent builds serialise on a lock file. Progress goes to w. A first
// build takes minutes (cgo sqlite included).
func BuildGitea(ctx context.Context, w io.Writer) (GiteaBuild, error) {
	cache, err := CacheDir()
	if err != nil {
		return GiteaBuild{}, err
	}
	if b, err := findGitea(cache); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return GiteaBuild{}, fmt.Errorf("create cache %s: %w", cache, err)
	}
	unlock, err := lockFile(filepath.Join(cache, "gitea-"+GiteaVersion+".lock"), w)
	if err != nil {
		return GiteaBuild{}, err
	}
	defer unlock()
	if b, err := findGitea(cache); err == nil { // built while we waited
		return b, nil
	}
	if err := buildGitea(ctx, giteaDir(cache), w); err != nil {
		return GiteaBuild{}, fmt.Errorf("build gitea %s: %w", GiteaVersion, err)
	}
	return findGitea(cache)
}

func buildGitea(ctx context.Context, dir string, w io.Writer) error {
	start := time.Now()
	fmt.Fprintf(w, "testenv: building gitea %s (the first build takes minutes)\n", GiteaVersion)
	probe := filepath.Join(dir, "probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(probe, "go.mod"), []byte("module atoll.test/gitea-probe\n\ngo 1.26\n"), 0o644); err != nil {
		return err
	}
	mod, _, err := moduleDir(ctx, probe, giteaModule+"@"+GiteaVersion)
	if err != nil {
		return err
	}
	// A fresh copy each time: a half-copied tree from an interrupted build
	// must not survive.
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	tmpSrc, err := os.MkdirTemp(dir, "src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpSrc)
	if err := copyTree(mod, tmpSrc); err != nil {
		return fmt.Errorf("copy module source: %w", err)
	}
	bin := filepath.Join(dir, "bin")
	tmpBin, err := os.MkdirTemp(dir, "bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpBin)
	version := strings.TrimPrefix(GiteaVersion, "v")
	args := []string{"build", "-v", "-trimpath",
		"-tags", "sqlite sqlite_unlock_notify",
		"-ldflags", "-s -w -X main.Version=" + version + " -X main.Tags=sqlite,sqlite_unlock_notify",
		"-o", filepath.Join(tmpBin, "gitea"), "."}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = tmpSrc
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	tail := newProgress(w, "gitea", start).consume(stderr)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, strings.Join(tail, "\n"))
	}
	if err := os.Rename(tmpSrc, src); err != nil {
		return err
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmpBin, "gitea"), filepath.Join(bin, "gitea")); err != nil {
		return err
	}
	fmt.Fprintf(w, "testenv: built gitea %s in %s\n", GiteaVersion, time.Since(start).Round(time.Second))
	return nil
}

// copyTree copies the regular files and directories under from (the
// read-only module cache) to to, writable.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}

// Gitea is a running Gitea on loopback with an admin user and an access
// token (scopes: all). Stop it with Stop.
type Gitea struct {
	URL           string // http://127.0.0.1:PORT, no trailing slash
	APIURL        string // URL + "/api/v1"
	AdminUser     string
	AdminPassword string
	Token         string
	Dir           string // work path: app.ini, data, repositories
	Log           string // the web server's output

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartGitea builds Gitea if needed (BuildGitea, progress on stderr),
// writes an app.ini under dir (sqlite3, offline, install lock, loopback
// only, webhooks allowed to loopback), migrates the database, creates an
// admin user and a token, starts `gitea web` and waits until its API
// answers. The process dies with the caller; Stop ends it sooner.
func StartGitea(ctx context.Context, dir string) (*Gitea, error) {
	b, err := BuildGitea(ctx, os.Stderr)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	g := &Gitea{
		URL:           fmt.Sprintf("http://127.0.0.1:%d", port),
		AdminUser:     "atoll-admin",
		AdminPassword: "atoll-admin-Passw0rd",
		Dir:           dir,
		Log:           filepath.Join(dir, "gitea.log"),
	}
	g.APIURL = g.URL + "/api/v1"
	custom := filepath.Join(dir, "custom")
	if err := os.MkdirAll(filepath.Join(custom, "conf"), 0o755); err != nil {
		return nil, err
	}
	ini, err := giteaINI(dir, b.Source, port)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(custom, "conf", "app.ini"), []byte(ini), 0o600); err != nil {
		return nil, fmt.Errorf("write app.ini: %w", err)
	}
	env := append(os.Environ(),
		"GITEA_WORK_DIR="+dir,
		"GITEA_CUSTOM="+custom,
		"HOME="+filepath.Join(dir, "home"),
		"GIT_CONFIG_NOSYSTEM=1",
	)
	run := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, b.Binary, args...)
		cmd.Dir = dir
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("gitea %s: %w\n%s%s", args[0], err, out.String(), errb.String())
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := run("migrate"); err != nil {
		return nil, err
	}
	if _, err := run("admin", "user", "create", "--admin", "--username", g.AdminUser, "--password", g.AdminPassword,
		"--email", g.AdminUser+"@example.com", "--must-change-password=false"); err != nil {
		return nil, err
	}
	tok, err := run("admin", "user", "generate-access-token", "--username", g.AdminUser, "--token-name", "atoll-e2e", "--scopes", "all", "--raw")
	if err != nil {
		return nil, err
	}
	if lines := strings.Fields(tok); len(lines) > 0 {
		g.Token = lines[len(lines)-1]
	}
	if len(g.Token) < 20 {
		return nil, fmt.Errorf("gitea generate-access-token printed no token")
	}

	log, err := os.OpenFile(g.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	g.cmd = exec.Command(b.Binary, "web")
	g.cmd.Dir = dir
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = log, log
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gitea: %w", err)
	}
	g.exited = make(chan struct{})
	go func() {
		_ = g.cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitReady(ctx, 2*time.Minute); err != nil {
		_ = g.Stop()
		return nil, err
	}
	return g, nil
}

// waitReady polls the version endpoint until it answers 200.
func (g *Gitea) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, g.APIURL+"/version", nil)
		if err != nil {
			cancel()
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gitea exited before it was ready; see %s", g.Log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gitea not ready after %s; see %s", limit, g.Log)
		}
	}
}

// Stop ends the web server (SIGTERM, SIGKILL after 10s) and waits for it.
func (g *Gitea) Stop() error {
	if g == nil || g.cmd == nil || g.cmd.Process == nil {
		return nil
	}
	select {
	case <-g.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-g.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.exited
	return nil
}

// giteaINI is the configuration of a throw-away loopback Gitea.
func giteaINI(dir, static string, port int) (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("current user: %w", err)
	}
	root := ""
	if os.Geteuid() == 0 {
		root = "I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\n"
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	return fmt.Sprintf(`APP_NAME = Atoll e2e
RUN_MODE = prod
RUN_USER = %[1]s
WORK_PATH = %[2]s
%[3]s
[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[4]d
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:%[4]d/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = %[5]s
APP_DATA_PATH = %[2]s/data

[database]
DB_TYPE = sqlite3
PATH = %[2]s/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = %[2]s/repositories
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[6]s
PASSWORD_HASH_ALGO = pbkdf2

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[webhook]
ALLOWED_HOST_LIST = loopback

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[cron]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = %[2]s/log
`, u.Username, dir, root, port, static, hex.EncodeToString(secret)), nil
}
