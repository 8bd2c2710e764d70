package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/reconcile"
)

// runOptions are the flags of `atoll run`.
type runOptions struct {
	masterOptions
	repo              string
	ref               string
	path              string
	interval          time.Duration
	cacheDir          string
	username          string
	passwordFile      string
	sshKeyFile        string
	knownHostsFile    string
	caFile            string
	openPGPKeyring    string
	sshAllowedSigners string
	allowInsecureHTTP bool
	webhookSecretFile string
	httpAddr          string
	metricsAddr       string
	allowExec         bool
	profiling         bool
	nodeIP            string
	drainTimeout      time.Duration
	maxRemovalShare   float64
	statusContext     string
	leaderElect       bool
	leaseName         string
	identity          string
	leaseDuration     time.Duration
	renewDeadline     time.Duration
	retryPeriod       time.Duration
	kubelet           kubeletAPIOptions
	sync              syncOptions
	admission         admissionOptions
	commitStatus      commitStatusOptions
}

func newRunCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep the master's virtual nodes matching a fleet repository (the controller)",
		Long: `Follow a ref of a fleet git repository and keep one virtual node per declared
cluster in the master: render, validate, plan, check the mass-removal breaker,
apply (add, update live, cordon + drain + remove), and report each revision's
outcome (commit status, Event, metrics, ` + "`atoll status`" + `).

Replicas elect a leader on a Lease in --namespace; only the leader runs nodes.
One HTTP listener (--http-addr), the one to expose, serves /healthz, /readyz
and the git host's push webhook at /hooks/git (with --webhook-secret-file);
another (--metrics-addr) serves /metrics and, with --profiling, /debug/pprof/.`,
		Example: `  atoll run --repo https://github.com/example/fleet.git --ref main --path overlays/prod \
      --git-password-file /etc/atoll/git/token --webhook-secret-file /etc/atoll/webhook/secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRun(ctx, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.addFlags(f, "info")
	f.StringVar(&o.repo, "repo", "", "URL of the fleet repository: https://, ssh:// or user@host:path (required)")
	f.StringVar(&o.ref, "ref", "main", "branch, refs/tags/TAG or a full commit SHA to follow")
	f.StringVar(&o.path, "path", ".", "fleet path inside the repository")
	f.DurationVar(&o.interval, "interval", time.Minute, "how often the repository is polled (the webhook fetches at once)")
	f.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "atoll-cache"), "directory for the repository cache and checkouts")
	f.StringVar(&o.username, "git-username", "", "HTTPS user name (with --git-password-file; default x-access-token)")
	f.StringVar(&o.passwordFile, "git-password-file", "", "file holding the HTTPS password or token")
	f.StringVar(&o.sshKeyFile, "git-ssh-key-file", "", "file holding the SSH private key")
	f.StringVar(&o.knownHostsFile, "git-known-hosts-file", "", "known_hosts for SSH (required with SSH)")
	f.StringVar(&o.caFile, "git-ca-file", "", "PEM CA bundle trusted for HTTPS besides the system roots")
	f.StringVar(&o.openPGPKeyring, "verify-openpgp-keyring", "", "ASCII-armored OpenPGP public keys: every new commit must carry a signature by one (or by an --verify-ssh-allowed-signers key)")
	f.StringVar(&o.sshAllowedSigners, "verify-ssh-allowed-signers", "", "git's allowed_signers file: every new commit must carry an SSH signature by one of its keys (or an OpenPGP one)")
	f.BoolVar(&o.allowInsecureHTTP, "allow-insecure-http", false, "allow a plain http:// repository URL (tests only)")
	f.StringVar(&o.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook secret; enables /hooks/git")
	f.StringVar(&o.httpAddr, "http-addr", ":8080", "address for /healthz, /readyz and /hooks/git")
	f.StringVar(&o.metricsAddr, "metrics-addr", ":9090", `address for /metrics (and /debug/pprof/); "" turns it off`)
	f.BoolVar(&o.profiling, "profiling", false, "also serve Go's profiles at /debug/pprof/ on --metrics-addr")
	f.StringVar(&o.nodeIP, "node-ip", "", "the virtual nodes' InternalIP (default: first non-loopback IPv4)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", reconcile.DefaultDrainTimeout, "how long a removed node is drained before it is deleted anyway")
	f.Float64Var(&o.maxRemovalShare, "max-removal-share", reconcile.DefaultMaxRemovalShare, "share of nodes a revision may remove without the Atoll-Allow-Removal trailer")
	f.StringVar(&o.statusContext, "status-context", "atoll", "context of the commit statuses")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader among replicas on a Lease; only the leader runs nodes")
	f.StringVar(&o.leaseName, "lease-name", "atoll", "name of the leader election Lease in --namespace")
	f.StringVar(&o.identity, "identity", "", "this replica's identity in the Lease (default: hostname and pid)")
	f.DurationVar(&o.leaseDuration, "lease-duration", 15*time.Second, "leader election lease duration")
	f.DurationVar(&o.renewDeadline, "renew-deadline", 10*time.Second, "leader election renew deadline")
	f.DurationVar(&o.retryPeriod, "retry-period", 2*time.Second, "leader election retry period")
	o.kubelet.addFlags(f)
	o.sync.addFlags(f)
	o.admission.addFlags(f)
	f.BoolVar(&o.allowExec, "allow-exec-credentials", false, allowExecUsage)
	o.commitStatus.addFlags(f)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

var fullCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// parseRef turns --ref into a gitsource.Ref.
func parseRef(ref string) gitsource.Ref {
	switch {
	case fullCommit.MatchString(ref):
		return gitsource.Ref{Commit: ref}
	case strings.HasPrefix(ref, "refs/tags/"):
		return gitsource.Ref{Tag: strings.TrimPrefix(ref, "refs/tags/")}
	default:
		return gitsource.Ref{Branch: strings.TrimPrefix(ref, "refs/heads/")}
	}
}

func readOptionalFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func runRun(ctx context.Context, o runOptions, stderr io.Writer) error {
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	masterCfg, client, err := o.master()
	if err != nil {
		return err
	}
	gitCfg := gitsource.GitConfig{
		URL: o.repo, Ref: parseRef(o.ref), CacheDir: o.cacheDir, PollInterval: o.interval,
		AllowInsecureHTTP: o.allowInsecureHTTP, Logger: log.With("component", "source"),
	}
	password, err := readOptionalFile(o.passwordFile)
	if err != nil {
		return err
	}
	if len(password) > 0 {
		gitCfg.Username, gitCfg.Password = cmp(o.username, "x-access-token"), strings.TrimSpace(string(password))
	}
	if gitCfg.SSHPrivateKey, err = readOptionalFile(o.sshKeyFile); err != nil {
		return err
	}
	if gitCfg.KnownHosts, err = readOptionalFile(o.knownHostsFile); err != nil {
		return err
	}
	if gitCfg.CABundle, err = readOptionalFile(o.caFile); err != nil {
		return err
	}
	if gitCfg.Signatures, err = o.signaturePolicy(); err != nil {
		return err
	}
	if st, err := reconcile.ReadStatus(ctx, client, o.namespace); err == nil {
		gitCfg.LastApplied = st.Applied
	}
	src, err := gitsource.NewGitSource(gitCfg)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var leading atomic.Bool
	var reconciler atomic.Pointer[reconcile.Reconciler]
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !leading.Load() {
			_, _ = io.WriteString(w, "ok: standby\n")
			return
		}
		r := reconciler.Load()
		if r == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		select {
		case <-r.Ready():
			_, _ = io.WriteString(w, "ok: leader\n")
		default:
			http.Error(w, "first reconcile pending", http.StatusServiceUnavailable)
		}
	})
	if o.webhookSecretFile != "" {
		secret, err := readOptionalFile(o.webhookSecretFile)
		if err != nil {
			return err
		}
		hook, err := gitsource.NewWebhook(gitsource.WebhookConfig{Secret: []byte(strings.TrimSpace(string(secret))), Trigger: src.Trigger, Logger: log.With("component", "webhook")})
		if err != nil {
			return err
		}
		mux.Handle("/hooks/git", leaderOnly(&leading, hook))
	}
	if o.profiling && o.metricsAddr == "" {
		return errors.New("--profiling needs --metrics-addr")
	}
	stopHTTP, err := serveHTTP(o.httpAddr, mux, nil, log)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	defer stopHTTP()
	if o.metricsAddr != "" {
		metrics := http.NewServeMux()
		metrics.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if o.profiling {
			metrics.HandleFunc("/debug/pprof/", pprof.Index)
			metrics.HandleFunc("/debug/pprof/profile", pprof.Profile)
			metrics.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			metrics.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		stopMetrics, err := serveHTTP(o.metricsAddr, metrics, nil, log)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer stopMetrics()
	}

	if err := ensureNamespace(ctx, client, o.namespace); err != nil {
		log.Warn("ensure namespace", "err", err)
	}
	// Every replica answers the admission webhook; the leader writes its
	// configuration.
	webhook, stopWebhook, err := o.admission.start(ctx, client, o.namespace, log)
	if err != nil {
		return err
	}
	defer stopWebhook()

	reporter, deliver, err := o.commitStatus.reporter(gitCfg, o.cacheDir, log)
	if err != nil {
		return err
	}
	rt := &fleetRuntime{
		masterConfig: masterCfg, master: client, namespace: o.namespace, nodeIP: o.nodeIP, log: log,
		source: gitRunner{src}, registry: reg, kubelet: o.kubelet, sync: o.sync, allowExec: o.allowExec, admission: webhook,
		reconcile: reconcile.Config{
			Path: o.path, Mode: reconcile.ModeGit, DrainTimeout: o.drainTimeout, MaxRemovalShare: o.maxRemovalShare,
			StatusContext: o.statusContext, Reporter: reporter,
		},
		onReady: reconciler.Store,
	}
	if deliver != nil {
		rt.background = map[string]func(context.Context) error{"commit statuses": deliver}
	}
	lead := func(ctx context.Context) error {
		leading.Store(true)
		defer leading.Store(false)
		return rt.run(ctx)
	}
	if !o.leaderElect {
		return lead(ctx)
	}
	id := o.identity
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.namespace, o.leaseName,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	started, done := make(chan struct{}), make(chan error, 1)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod,
		ReleaseOnCancel: true, Name: "atoll",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading: running the fleet", "identity", id)
				close(started)
				done <- lead(ctx)
			},
			OnStoppedLeading: func() { log.Info("not leading", "identity", id) },
			OnNewLeader: func(leader string) {
				if leader != id {
					log.Info("standing by", "leader", leader)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	log.Info("waiting for leadership", "lease", o.namespace+"/"+o.leaseName, "identity", id)
	elector.Run(ctx)
	var runErr error
	select {
	case <-started:
		runErr = <-done
	default:
	}
	if ctx.Err() != nil {
		return runErr
	}
	// Lost the lease: exit so that nothing keeps running nodes twice.
	return errors.Join(errors.New("lost leadership"), runErr)
}

// signaturePolicy is the policy the --verify-* flags ask for; nil when
// neither is set (commits are not verified).
func (o *runOptions) signaturePolicy() (*gitsource.SignaturePolicy, error) {
	if o.openPGPKeyring == "" && o.sshAllowedSigners == "" {
		return nil, nil
	}
	p := &gitsource.SignaturePolicy{}
	if o.openPGPKeyring != "" {
		ring, err := readOptionalFile(o.openPGPKeyring)
		if err != nil {
			return nil, fmt.Errorf("--verify-openpgp-keyring: %w", err)
		}
		p.OpenPGPKeys = []string{string(ring)}
	}
	var err error
	if p.SSHAllowedSigners, err = readOptionalFile(o.sshAllowedSigners); err != nil {
		return nil, fmt.Errorf("--verify-ssh-allowed-signers: %w", err)
	}
	return p, nil
}

// leaderOnly passes requests to h while this replica leads; a standby
// answers 503 with Retry-After, so that the git host delivers the push
// again (to whichever replica its Service picks) instead of it being
// accepted and dropped.
func leaderOnly(leading *atomic.Bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !leading.Load() {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "standby replica: only the leader fetches; deliver again", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// gitRunner is a GitSource as a reconcile.Source with Run.
type gitRunner struct{ s *gitsource.GitSource }

func (g gitRunner) Fetch(ctx context.Context) (reconcile.Snapshot, error) {
	return fleetSource{g.s}.Fetch(ctx)
}
func (g gitRunner) Changes() <-chan struct{}      { return g.s.Changes() }
func (g gitRunner) Run(ctx context.Context) error { return g.s.Run(ctx) }
func (g gitRunner) Ready() <-chan struct{}        { return g.s.Ready() }

// serveHTTP serves mux on addr (with TLS if tlsConfig is set) in the
// background; the returned func stops it.
func serveHTTP(addr string, mux http.Handler, tlsConfig *tls.Config, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving http", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
