package gitsource

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
)

// stalledServer accepts TCP connections and never answers.
func stalledServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// stalledConfig is a named configuration of a stalled server.
type stalledConfig struct {
	name string
	cfg  GitConfig
}

// stalledConfigs returns an HTTP and an SSH configuration, with a 300ms
// Timeout, for a server that accepts connections and never answers.
func stalledConfigs(t *testing.T) []stalledConfig {
	t.Helper()
	addr := stalledServer(t)
	hostPub, _ := newED25519(t)
	_, clientKey := newED25519(t)
	const timeout = 300 * time.Millisecond
	return []stalledConfig{
		{name: "http", cfg: GitConfig{URL: "http://" + addr + "/fleet.git", AllowInsecureHTTP: true, Timeout: timeout}},
		{name: "ssh", cfg: GitConfig{URL: "ssh://git@" + addr + "/fleet.git", SSHPrivateKey: clientKey, KnownHosts: knownHostsLine(addr, hostPub), Timeout: timeout}},
	}
}

// TestGitSourceTimeout: a server that accepts and stalls costs one Timeout,
// over HTTP and over SSH (where go-git ignores the context during the
// handshake), and the error is retryable.
func TestGitSourceTimeout(t *testing.T) {
	for _, tt := range stalledConfigs(t) {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CacheDir = t.TempDir()
			tt.cfg.Logger = testLogger(t)
			src, err := NewGitSource(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = src.Fetch(fetchCtx(t))
			if err == nil {
				t.Fatal("Fetch from a stalled server succeeded")
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Fetch took %v with a 300ms timeout", took)
			}
			if IsTerminal(err) {
				t.Errorf("IsTerminal(%v) = true, want retryable", err)
			}
		})
	}
}

// TestRemoteTimeout: Remote's Fetch and Push (used by the commit status
// notes writer) are bounded by Timeout too, over SSH included, even when
// the caller's context has no deadline.
func TestRemoteTimeout(t *testing.T) {
	repoDir := t.TempDir()
	if _, err := git.PlainInit(repoDir, true); err != nil {
		t.Fatal(err)
	}
	for _, tt := range stalledConfigs(t) {
		r, err := NewRemote(tt.cfg, t.TempDir())
		if err != nil {
			t.Fatalf("%s: NewRemote: %v", tt.name, err)
		}
		for op, call := range map[string]func(context.Context, string, ...string) error{"fetch": r.Fetch, "push": r.Push} {
			t.Run(tt.name+" "+op, func(t *testing.T) {
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- call(context.Background(), repoDir, "refs/notes/atoll:refs/notes/atoll") }()
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("%s to a stalled server succeeded", op)
					}
					if IsTerminal(err) {
						t.Errorf("IsTerminal(%v) = true, want retryable", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s still running after %v with a 300ms timeout", op, time.Since(start))
				}
			})
		}
	}
}
