package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Config configures the kubelet API server.
type Config struct {
	// Addr is the address to listen on, e.g. ":10250". Required.
	Addr string
	// Locator finds the remote pod behind a master pod. Required.
	Locator Locator
	// Master is a client of the master cluster, used for TokenReview and
	// SubjectAccessReview. Required unless Insecure.
	Master kubernetes.Interface
	// ClientCAFile, or ClientCA (PEM), is the CA that signs client
	// certificates to accept, typically the master's (its apiserver presents
	// a kubelet client certificate). Optional: without it only bearer tokens
	// authenticate.
	ClientCAFile string
	ClientCA     []byte
	// TLSCertFile and TLSKeyFile are the serving certificate. Empty: a
	// self-signed certificate for NodeIP is generated at start.
	TLSCertFile, TLSKeyFile string
	// NodeIP is the address the virtual nodes advertise; it goes in the
	// generated certificate.
	NodeIP string
	// Insecure serves without authentication or authorization. For local
	// demos only; it is logged loudly.
	Insecure bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is the one HTTPS kubelet API for every virtual node of the process.
// Pods are unique by namespace/name in the master, so one server can route
// every call to the right remote cluster.
type Server struct {
	cfg   Config
	log   *slog.Logger
	guard *guard // nil only when Insecure

	ready    chan struct{}
	mu       sync.Mutex
	listener net.Listener
}

// New checks cfg and builds the server. It refuses to build one without an
// authenticator unless cfg.Insecure is set.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("kubelet api: Addr is required")
	}
	if cfg.Locator == nil {
		return nil, errors.New("kubelet api: Locator is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "kubelet-api"), ready: make(chan struct{})}
	if cfg.Insecure {
		s.log.Warn("KUBELET API IS INSECURE: anyone who reaches " + cfg.Addr + " can read logs, exec into and port-forward to every delegated pod. Use --insecure-kubelet-api only for local demos.")
		return s, nil
	}
	if cfg.Master == nil {
		return nil, errors.New("kubelet api: refusing to start without an authenticator: a master client is required (or, for local demos only, insecure mode)")
	}
	var ca *clientCA
	if cfg.ClientCAFile != "" || len(cfg.ClientCA) > 0 {
		var err error
		if ca, err = newClientCA(cfg.ClientCAFile, cfg.ClientCA); err != nil {
			return nil, fmt.Errorf("kubelet api: load client CA: %w", err)
		}
	}
	s.guard = newGuard(cfg.Master, ca)
	return s, nil
}

// Handler returns the authenticated kubelet API routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	pods := func(ctx context.Context) ([]*corev1.Pod, error) { return s.cfg.Locator.Pods(ctx) }
	mux.Handle("/", api.PodHandler(api.PodHandlerConfig{
		RunInContainer:        s.exec,
		AttachToContainer:     s.attach,
		PortForward:           s.portForward,
		GetContainerLogs:      s.containerLogs,
		GetPods:               pods,
		GetPodsFromKubernetes: pods,
		StreamIdleTimeout:     4 * time.Hour,
		StreamCreationTimeout: 30 * time.Second,
	}, true))
	return s.authorize(mux)
}

// authorize lets a request through once the guard allows it for the virtual
// node it is about.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.guard == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, found := "", true
		if ns, pod, ok := podPath(r.URL.Path); ok {
			t, err := s.cfg.Locator.Locate(r.Context(), ns, pod)
			switch {
			case err == nil:
				node = t.Node
			case errors.Is(err, ErrPodNotFound):
				found = false
			default:
				http.Error(w, "locate pod: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if code, msg := s.guard.check(r.Context(), r, node); code != 0 {
			http.Error(w, msg, code)
			return
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// podPath returns the pod a kubelet path is about, e.g.
// /exec/{namespace}/{pod}/{container} or /portForward/{namespace}/{pod}.
func podPath(path string) (namespace, pod string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 3 {
		return "", "", false
	}
	switch parts[0] {
	case "containerLogs", "exec", "attach", "portForward":
		return parts[1], parts[2], true
	}
	return "", "", false
}

func (s *Server) locate(ctx context.Context, namespace, name string) (Target, error) {
	t, err := s.cfg.Locator.Locate(ctx, namespace, name)
	if err != nil {
		return Target{}, fmt.Errorf("locate pod %s/%s: %w", namespace, name, err)
	}
	return t, nil
}

// Run serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	cert, err := s.certificate()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kubelet api: listen on %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.listener = l
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			// Certificates are verified by the guard against the client
			// CA, which may change while the server runs (clientCA).
			ClientAuth: tls.RequestClientCert,
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	close(s.ready)
	s.log.Info("serving kubelet API", "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("kubelet api: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		return nil
	}
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once Ready.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

func (s *Server) certificate() (tls.Certificate, error) {
	if s.cfg.TLSCertFile != "" || s.cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("kubelet api: load serving certificate: %w", err)
		}
		return cert, nil
	}
	return selfSigned(s.cfg.NodeIP)
}

// selfSigned generates a serving certificate for ip, valid for a year.
func selfSigned(ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "atoll-kubelet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	if parsed := net.ParseIP(ip); parsed != nil {
		tmpl.IPAddresses = []net.IP{parsed}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("kubelet api: generate serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
