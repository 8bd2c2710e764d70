package gitserver

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		user, pass string // presented by the client
		wantCode   int    // for the upload-pack advertisement
		wantPush   int    // for the receive-pack advertisement
	}{
		{name: "read-only, no auth", wantCode: http.StatusOK, wantPush: http.StatusForbidden},
		{name: "push", opts: Options{Push: true}, wantCode: http.StatusOK, wantPush: http.StatusOK},
		{name: "basic auth, right password", opts: Options{Username: "u", Password: "p", Push: true}, user: "u", pass: "p", wantCode: http.StatusOK, wantPush: http.StatusOK},
		{name: "basic auth, wrong password", opts: Options{Username: "u", Password: "p", Push: true}, user: "u", pass: "x", wantCode: http.StatusUnauthorized, wantPush: http.StatusUnauthorized},
		{name: "basic auth, none given", opts: Options{Username: "u", Password: "p"}, wantCode: http.StatusUnauthorized, wantPush: http.StatusUnauthorized},
		{name: "TLS", opts: Options{TLS: true}, wantCode: http.StatusOK, wantPush: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := NewRepo(t)
			sha := repo.Commit(map[string]string{"a.yaml": "a\n"}, "one")
			repo.Push("main")
			srv := Start(t, repo.Root, tt.opts)
			if tt.opts.TLS != strings.HasPrefix(srv.URL, "https://") || tt.opts.TLS != (srv.CAPEM != nil) {
				t.Fatalf("TLS %v: URL %s, CA %d bytes", tt.opts.TLS, srv.URL, len(srv.CAPEM))
			}
			client := &http.Client{Timeout: 10 * time.Second}
			if srv.CAPEM != nil {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(srv.CAPEM) {
					t.Fatal("CAPEM holds no certificate")
				}
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
			}
			advertise := func(service string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, srv.RepoURL(repo)+"/info/refs?service="+service, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.user != "" {
					req.SetBasicAuth(tt.user, tt.pass)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, string(body)
			}
			code, body := advertise("git-upload-pack")
			if code != tt.wantCode {
				t.Errorf("upload-pack advertisement: %d, want %d", code, tt.wantCode)
			}
			if code == http.StatusOK && !strings.Contains(body, sha+" refs/heads/main") {
				t.Errorf("advertisement lacks %s refs/heads/main:\n%s", sha, body)
			}
			if code, _ := advertise("git-receive-pack"); code != tt.wantPush {
				t.Errorf("receive-pack advertisement: %d, want %d", code, tt.wantPush)
			}
			wantRefs := int64(2)
			if tt.wantCode == http.StatusUnauthorized {
				wantRefs = 0
			}
			if got := srv.InfoRefs(); got != wantRefs {
				t.Errorf("InfoRefs = %d, want %d", got, wantRefs)
			}
		})
	}
}

// TestServerFetchAndPush runs the git CLI against a server with auth and
// push: a fetch costs one upload-pack POST, a push lands in the bare
// repository.
func TestServerFetchAndPush(t *testing.T) {
	repo := NewRepo(t)
	first := repo.Commit(map[string]string{"a.yaml": "a\n"}, "one")
	repo.Push("main")
	srv := Start(t, repo.Root, Options{Username: "u", Password: "p", Push: true})
	url := strings.Replace(srv.RepoURL(repo), "http://", "http://u:p@", 1)

	repo.Git(repo.Work, "fetch", "-q", url, "main")
	if got := srv.UploadPacks(); got != 1 {
		t.Errorf("UploadPacks after one fetch = %d, want 1", got)
	}
	second := repo.Commit(nil, "two")
	if second == first {
		t.Fatal("second commit has the first's hash")
	}
	repo.Git(repo.Work, "push", "-q", url, "HEAD:refs/heads/main")
	if got := repo.Git(repo.Bare, "rev-parse", "refs/heads/main"); got != second {
		t.Errorf("main after push over HTTP = %s, want %s", got, second)
	}
	if got := srv.UploadPacks(); got != 1 {
		t.Errorf("UploadPacks after a push = %d, want still 1", got)
	}
}
