package gitsource

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/atoll-dev/atoll/test/gitserver"
)

// startSSHRepo starts sshd and a Repo with one commit, clusters/a.yaml,
// pushed to main; it returns both and the commit.
func startSSHRepo(t *testing.T) (*sshServer, *gitserver.Repo, string) {
	t.Helper()
	srv := startSSHD(t)
	f := gitserver.NewRepo(t)
	sha := f.Commit(map[string]string{"clusters/a.yaml": "name: a\n"}, "add a")
	f.Push("main")
	return srv, f, sha
}

func TestGitSourceSSH(t *testing.T) {
	srv, f, sha := startSSHRepo(t)
	wrongPub, _ := newED25519(t)
	_, wrongClient := newED25519(t)

	tests := []struct {
		name       string
		knownHosts []byte
		clientKey  []byte
		wantCfgErr error // from NewGitSource
		wantErr    error // from Fetch
	}{
		{name: "right known_hosts", knownHosts: srv.KnownHosts, clientKey: srv.ClientKey},
		{name: "missing known_hosts", clientKey: srv.ClientKey, wantCfgErr: ErrInvalidConfig},
		{name: "mismatched host key", knownHosts: knownHostsLine(srv.Addr, wrongPub), clientKey: srv.ClientKey, wantErr: ErrHostKey},
		{name: "host not in known_hosts", knownHosts: knownHostsLine("192.0.2.1:22", srv.HostKey), clientKey: srv.ClientKey, wantErr: ErrHostKey},
		{name: "client key not authorized", knownHosts: srv.KnownHosts, clientKey: wrongClient, wantErr: ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Commands(t))
			cache := t.TempDir()
			src, err := NewGitSource(GitConfig{
				URL:           srv.URL(f.Bare),
				CacheDir:      cache,
				SSHPrivateKey: tt.clientKey,
				KnownHosts:    tt.knownHosts,
				Timeout:       30 * time.Second,
				Logger:        testLogger(t),
			})
			if tt.wantCfgErr != nil {
				if !errors.Is(err, tt.wantCfgErr) {
					t.Fatalf("NewGitSource = %v, want %v", err, tt.wantCfgErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Fetch(fetchCtx(t))
			cmds := srv.Commands(t)[before:]
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !IsTerminal(err) {
					t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
				}
				// Refused during the handshake: no command ran on the
				// server and nothing was stored.
				if len(cmds) != 0 {
					t.Errorf("server ran %q", cmds)
				}
				if n, _ := dirSize(filepath.Join(cache)); n > int64(len(tt.knownHosts)) {
					t.Errorf("cache holds %d bytes after a refused fetch", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if snap.Revision != sha || readFile(t, filepath.Join(snap.Dir, "clusters/a.yaml")) != "name: a\n" {
				t.Errorf("snapshot = %+v", snap)
			}
			// One ls-remote and one fetch, both upload-pack.
			if len(cmds) != 2 || !strings.HasPrefix(cmds[0], "git-upload-pack") {
				t.Errorf("server commands = %q, want two git-upload-pack", cmds)
			}
		})
	}
}

// TestRemoteSSH: Remote fetches and pushes over SSH with the same key and
// known_hosts rules as GitSource.
func TestRemoteSSH(t *testing.T) {
	srv, f, sha := startSSHRepo(t)
	wrongPub, _ := newED25519(t)

	tests := []struct {
		name       string
		knownHosts []byte
		wantErr    error
	}{
		{name: "right known_hosts", knownHosts: srv.KnownHosts},
		{name: "mismatched host key", knownHosts: knownHostsLine(srv.Addr, wrongPub), wantErr: ErrHostKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRemote(GitConfig{URL: srv.URL(f.Bare), SSHPrivateKey: srv.ClientKey, KnownHosts: tt.knownHosts, Timeout: 30 * time.Second}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			local := t.TempDir()
			if _, err := git.PlainInit(local, true); err != nil {
				t.Fatal(err)
			}
			err = r.Fetch(fetchCtx(t), local, "+refs/heads/main:refs/notes/ssh")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
				}
				if err := r.Push(fetchCtx(t), local, "refs/heads/main:refs/heads/main"); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Push = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if err := r.Fetch(fetchCtx(t), local, "+refs/notes/none:refs/notes/none"); !errors.Is(err, ErrRefNotFound) {
				t.Errorf("Fetch of a missing ref = %v, want ErrRefNotFound", err)
			}
			if err := r.Push(fetchCtx(t), local, "refs/notes/ssh:refs/notes/ssh"); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if got := f.Git(f.Bare, "rev-parse", "refs/notes/ssh"); got != sha {
				t.Errorf("pushed refs/notes/ssh = %s, want %s", got, sha)
			}
			if err := r.Push(fetchCtx(t), local, "refs/notes/ssh:refs/notes/ssh"); err != nil {
				t.Errorf("Push with nothing new: %v", err)
			}
		})
	}
}
