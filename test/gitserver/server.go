package gitserver

import (
	"crypto/tls"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Options tune a Server. The zero Options serve plain HTTP, without auth,
// read-only.
type Options struct {
	// Username and Password, if Username is set, are required as HTTP basic
	// auth on every request; others get 401.
	Username, Password string
	// TLS serves HTTPS with a certificate for 127.0.0.1 from a fresh CA
	// (Server.CAPEM).
	TLS bool
	// Push permits pushes (receive-pack); without it the server refuses
	// them.
	Push bool
}

// Server is git http-backend serving the repositories under one directory.
// It stops when the test ends.
type Server struct {
	URL   string // base URL, no trailing slash; a repository is URL + "/" + its directory name
	CAPEM []byte // the CA of a TLS server, PEM; nil for plain HTTP

	infoRefs    atomic.Int64
	uploadPacks atomic.Int64
}

// Start serves the bare repositories under root until t ends.
func Start(t testing.TB, root string, o Options) *Server {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	receivePack := "false"
	if o.Push {
		receivePack = "true"
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + root,
			"PATH=" + os.Getenv("PATH"),
			// Decides for every repository, above their own config.
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=" + receivePack,
		},
	}
	s := &Server{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != o.Username || p != o.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.infoRefs.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.uploadPacks.Add(1)
		}
		backend.ServeHTTP(w, r)
	}))
	if o.TLS {
		caPEM, cert := newCA(t)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		s.CAPEM = caPEM
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// RepoURL is the URL of r on s (s must serve r.Root).
func (s *Server) RepoURL(r *Repo) string { return s.URL + "/" + filepath.Base(r.Bare) }

// InfoRefs counts ref advertisements (GET …/info/refs: ls-remote, and
// the first request of every fetch and push).
func (s *Server) InfoRefs() int64 { return s.infoRefs.Load() }

// UploadPacks counts upload-pack POSTs, the only requests that can
// transfer objects to a client.
func (s *Server) UploadPacks() int64 { return s.uploadPacks.Load() }
