package gitsource

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/atoll-dev/atoll/test/gitserver"
)

func TestNewGitSourceConfig(t *testing.T) {
	_, sshKey := newED25519(t)
	encKey := encryptedED25519(t, "pass phrase")
	kh := []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIm7LKtxwJb0B2BAJL6YAyJ8zUt9KoVw2uM8J9YjXOsD\n")
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name    string
		cfg     GitConfig
		wantErr bool
	}{
		{name: "https", cfg: GitConfig{URL: "https://example.com/fleet.git", Username: "u", Password: "p"}},
		{name: "https tag", cfg: GitConfig{URL: "https://example.com/fleet.git", Ref: Ref{Tag: "v1"}}},
		{name: "https commit", cfg: GitConfig{URL: "https://example.com/fleet.git", Ref: Ref{Commit: sha}}},
		{name: "ssh", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: sshKey, KnownHosts: kh}},
		{name: "scp-like ssh", cfg: GitConfig{URL: "git@example.com:fleet.git", SSHPrivateKey: sshKey, KnownHosts: kh}},
		{name: "ssh with encrypted key", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: encKey, SSHPassphrase: "pass phrase", KnownHosts: kh}},
		{name: "ssh with encrypted key, no passphrase", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: encKey, KnownHosts: kh}, wantErr: true},
		{name: "ssh with encrypted key, wrong passphrase", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: encKey, SSHPassphrase: "secret", KnownHosts: kh}, wantErr: true},
		{name: "local with AllowLocal", cfg: GitConfig{URL: "/srv/fleet.git", AllowLocal: true}},
		{name: "no URL", cfg: GitConfig{}, wantErr: true},
		{name: "file URL", cfg: GitConfig{URL: "file:///srv/fleet.git"}, wantErr: true},
		{name: "local path", cfg: GitConfig{URL: "/srv/fleet.git"}, wantErr: true},
		{name: "relative local path", cfg: GitConfig{URL: "../fleet"}, wantErr: true},
		{name: "plain http", cfg: GitConfig{URL: "http://example.com/fleet.git"}, wantErr: true},
		{name: "git protocol", cfg: GitConfig{URL: "git://example.com/fleet.git"}, wantErr: true},
		{name: "password in URL", cfg: GitConfig{URL: "https://u:secret@example.com/fleet.git"}, wantErr: true},
		{name: "ssh without known_hosts", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: sshKey}, wantErr: true},
		{name: "ssh without key", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", KnownHosts: kh}, wantErr: true},
		{name: "ssh with bad key", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: []byte("nope"), KnownHosts: kh}, wantErr: true},
		{name: "ssh with basic auth", cfg: GitConfig{URL: "ssh://git@example.com/fleet.git", SSHPrivateKey: sshKey, KnownHosts: kh, Password: "p"}, wantErr: true},
		{name: "https with ssh key", cfg: GitConfig{URL: "https://example.com/fleet.git", SSHPrivateKey: sshKey}, wantErr: true},
		{name: "two refs", cfg: GitConfig{URL: "https://example.com/fleet.git", Ref: Ref{Branch: "main", Tag: "v1"}}, wantErr: true},
		{name: "short SHA", cfg: GitConfig{URL: "https://example.com/fleet.git", Ref: Ref{Commit: "abc123"}}, wantErr: true},
		{name: "bad branch name", cfg: GitConfig{URL: "https://example.com/fleet.git", Ref: Ref{Branch: "a..b"}}, wantErr: true},
		{name: "bad depth", cfg: GitConfig{URL: "https://example.com/fleet.git", Depth: -2}, wantErr: true},
		{name: "empty signature policy", cfg: GitConfig{URL: "https://example.com/fleet.git", Signatures: &SignaturePolicy{}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CacheDir = t.TempDir()
			_, err := NewGitSource(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewGitSource error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("error %v is not ErrInvalidConfig", err)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("error leaks a credential: %v", err)
				}
			}
		})
	}
	if _, err := NewGitSource(GitConfig{URL: "https://example.com/x"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no CacheDir: %v", err)
	}
}

// TestGitSourceLocal shows AllowLocal working (and being needed).
func TestGitSourceLocal(t *testing.T) {
	f := gitserver.NewRepo(t)
	sha := f.Commit(map[string]string{"a.yaml": "a\n"}, "one")
	f.Push("main")
	src, err := NewGitSource(GitConfig{URL: f.Bare, CacheDir: t.TempDir(), AllowLocal: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Fetch(fetchCtx(t))
	if err != nil || snap.Revision != sha {
		t.Fatalf("Fetch = %+v, %v", snap, err)
	}
}

func TestGitSourceLimits(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		limits  Limits
		wantErr error
	}{
		{name: "within limits", files: map[string]string{"a.yaml": "a\n", "b.yaml": "b\n"}, limits: Limits{MaxFiles: 2, MaxBytes: 4}},
		{name: "too many files", files: map[string]string{"a.yaml": "a\n", "b.yaml": "b\n", "c.yaml": "c\n"}, limits: Limits{MaxFiles: 2}, wantErr: ErrLimitExceeded},
		{name: "too many bytes", files: map[string]string{"a.yaml": strings.Repeat("a", 100)}, limits: Limits{MaxBytes: 99}, wantErr: ErrLimitExceeded},
		{name: "repository too large", files: map[string]string{"big.bin": randomText(t, 200_000)}, limits: Limits{MaxRepoBytes: 50_000}, wantErr: ErrLimitExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			f.Commit(tt.files, "files")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{})
			src := newHTTPSource(t, srv, func(c *GitConfig) { c.Username, c.Password, c.Limits = "", "", tt.limits })
			_, err := src.Fetch(fetchCtx(t))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !IsTerminal(err) {
				t.Errorf("IsTerminal(%v) = false", err)
			}
			// A refused pack leaves nothing behind.
			if size, _ := dirSize(filepath.Join(src.repoDir, "objects")); tt.limits.MaxRepoBytes > 0 && size > tt.limits.MaxRepoBytes {
				t.Errorf("objects hold %d bytes after the refused fetch", size)
			}
		})
	}
}

func encryptedED25519(t *testing.T, passphrase string) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	// Incompressible but printable: hex of random bytes.
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, n/2)
	if _, err := f.Read(raw); err != nil {
		t.Fatal(err)
	}
	const hexdigits = "0123456789abcdef"
	for i, c := range raw {
		b[2*i], b[2*i+1] = hexdigits[c>>4], hexdigits[c&15]
	}
	return string(b)
}

func TestGitSourceUnsafeSymlink(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		wantErr error
	}{
		{name: "inside the tree", target: "clusters/a.yaml"},
		{name: "out of the tree", target: "../../etc/passwd", wantErr: ErrUnsafePath},
		{name: "absolute", target: "/etc/passwd", wantErr: ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			f.Write(map[string]string{"clusters/a.yaml": "a\n"})
			if err := os.Symlink(tt.target, filepath.Join(f.Work, "link.yaml")); err != nil {
				t.Fatal(err)
			}
			f.Commit(nil, "symlink")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{})
			src := newHTTPSource(t, srv, func(c *GitConfig) { c.Username, c.Password = "", "" })
			snap, err := src.Fetch(fetchCtx(t))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if got, _ := os.Readlink(filepath.Join(snap.Dir, "link.yaml")); got != tt.target {
					t.Errorf("link target = %q", got)
				}
			}
		})
	}
}

func TestValidTreePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"a.yaml", true},
		{"clusters/a.yaml", true},
		{".github/workflows/x.yaml", true},
		{"..", false},
		{"a/../b", false},
		{".git/config", false},
		{"sub/.GIT/hooks/post-checkout", false},
		{".git./x", false},
		{"/etc/passwd", false},
		{"a\\b", false},
		{"a//b", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := validTreePath(tt.path)
			if (err == nil) != tt.ok {
				t.Errorf("validTreePath(%q) = %v, want ok %v", tt.path, err, tt.ok)
			}
		})
	}
}
