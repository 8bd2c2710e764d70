package gitsource

import (
	"net"
	"sync"
	"testing"
	"time"
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

// TestGitSourceTimeout: a server that accepts and stalls costs one Timeout,
// over HTTP and over SSH (where go-git ignores the context during the
// handshake), and the error is retryable.
func TestGitSourceTimeout(t *testing.T) {
	addr := stalledServer(t)
	hostPub, _ := newED25519(t)
	_, clientKey := newED25519(t)
	tests := []struct {
		name string
		cfg  GitConfig
	}{
		{name: "http", cfg: GitConfig{URL: "http://" + addr + "/fleet.git", AllowInsecureHTTP: true}},
		{name: "ssh", cfg: GitConfig{URL: "ssh://git@" + addr + "/fleet.git", SSHPrivateKey: clientKey, KnownHosts: knownHostsLine(addr, hostPub)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CacheDir = t.TempDir()
			tt.cfg.Timeout = 300 * time.Millisecond
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
