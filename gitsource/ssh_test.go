package gitsource

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGitSourceSSH(t *testing.T) {
	srv := startSSHD(t)
	f := newFixture(t)
	sha := f.commit(map[string]string{"clusters/a.yaml": "name: a\n"}, "add a")
	f.push("main")
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
				URL:           srv.URL(f.bare),
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
