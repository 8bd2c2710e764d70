package kubeletapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
)

type noPods struct{}

func (noPods) Locate(_ context.Context, ns, name string) (Target, error) {
	return Target{}, ErrPodNotFound
}
func (noPods) Pods(context.Context) ([]*corev1.Pod, error) { return nil, nil }

func TestNewRefusesToStartWithoutAuthenticator(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "no address", cfg: Config{Locator: noPods{}, Master: fake.NewClientset()}, wantErr: "Addr is required"},
		{name: "no locator", cfg: Config{Addr: ":0", Master: fake.NewClientset()}, wantErr: "Locator is required"},
		{name: "no authenticator", cfg: Config{Addr: ":0", Locator: noPods{}}, wantErr: "refusing to start without an authenticator"},
		{name: "unreadable client CA", cfg: Config{Addr: ":0", Locator: noPods{}, Master: fake.NewClientset(), ClientCAFile: "/does/not/exist"}, wantErr: "load client CA"},
		{name: "tokens only", cfg: Config{Addr: ":0", Locator: noPods{}, Master: fake.NewClientset()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New() = %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestInsecureModeWarnsAndServesWithoutAuth(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Config{Addr: ":0", Locator: noPods{}, Insecure: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "KUBELET API IS INSECURE") {
		t.Errorf("insecure mode logged %q, want a loud warning", logs.String())
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/pods", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /pods in insecure mode = %d, want 200", rec.Code)
	}
}

func TestAnonymousRequestIsUnauthorized(t *testing.T) {
	s, err := New(Config{Addr: ":0", Locator: noPods{}, Master: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/pods", "/healthz", "/containerLogs/ns/pod/c", "/exec/ns/pod/c"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s = %d, want 401", path, rec.Code)
		}
	}
}

func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		path, method      string
		wantSub, wantVerb string
		wantNS, wantPod   string
		wantPodPath       bool
	}{
		{path: "/containerLogs/shop/web-1/app", method: http.MethodGet, wantSub: "proxy", wantVerb: "get", wantNS: "shop", wantPod: "web-1", wantPodPath: true},
		{path: "/exec/shop/web-1/app", method: http.MethodPost, wantSub: "proxy", wantVerb: "create", wantNS: "shop", wantPod: "web-1", wantPodPath: true},
		{path: "/attach/shop/web-1/app", method: http.MethodPost, wantSub: "proxy", wantVerb: "create", wantNS: "shop", wantPod: "web-1", wantPodPath: true},
		{path: "/portForward/shop/web-1", method: http.MethodPost, wantSub: "proxy", wantVerb: "create", wantNS: "shop", wantPod: "web-1", wantPodPath: true},
		{path: "/pods", method: http.MethodGet, wantSub: "proxy", wantVerb: "get"},
		{path: "/stats/summary", method: http.MethodGet, wantSub: "stats", wantVerb: "get"},
		{path: "/metrics", method: http.MethodGet, wantSub: "metrics", wantVerb: "get"},
		{path: "/logs/syslog", method: http.MethodGet, wantSub: "log", wantVerb: "get"},
		{path: "/statsx", method: http.MethodGet, wantSub: "proxy", wantVerb: "get"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if got := subresource(tt.path); got != tt.wantSub {
				t.Errorf("subresource = %q, want %q", got, tt.wantSub)
			}
			if got := verb(tt.method); got != tt.wantVerb {
				t.Errorf("verb = %q, want %q", got, tt.wantVerb)
			}
			ns, pod, ok := podPath(tt.path)
			if ns != tt.wantNS || pod != tt.wantPod || ok != tt.wantPodPath {
				t.Errorf("podPath = %q, %q, %v; want %q, %q, %v", ns, pod, ok, tt.wantNS, tt.wantPod, tt.wantPodPath)
			}
		})
	}
}

func TestRunServesGeneratedCertificateForNodeIP(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Locator: noPods{}, Master: fake.NewClientset(), NodeIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run() ended early: %v", err)
	}
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test inspects the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("serving certificate IPs = %v, want [127.0.0.1]", cert.IPAddresses)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not verify for the node IP: %v", err)
	}
}
