package vnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// ManagerConfig configures a Manager. Master is required; the rest has
// defaults (see the Default* constants).
type ManagerConfig struct {
	// Master is how to reach the master cluster's API server.
	Master *rest.Config
	// MasterID identifies this master on remote objects (LabelMaster). Empty:
	// derived from the UID of the master's kube-system namespace.
	MasterID string
	// NodeIP is the virtual nodes' InternalIP and the hostIP of their pods.
	// Empty: the first non-loopback IPv4 address of this host, else 127.0.0.1.
	NodeIP string
	// KubeletPort is advertised as the nodes' kubelet endpoint port.
	KubeletPort int32
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics (nil: not exported).
	Registerer prometheus.Registerer

	// Workers is how many keys one node syncs at once.
	Workers int
	// QPS and Burst limit each client (master, and each remote).
	QPS   float32
	Burst int
	// RequestTimeout bounds every API call.
	RequestTimeout time.Duration
	// PingTimeout bounds the remote health check.
	PingTimeout time.Duration
	// PingInterval is how often the remote is checked and the Node refreshed.
	PingInterval time.Duration
	// ResyncPeriod is the informers' full resync of both sides.
	ResyncPeriod time.Duration
	// CapacityInterval is how often allocatable is recomputed.
	CapacityInterval time.Duration
	// GCInterval is how often orphans are looked for.
	GCInterval time.Duration
	// LeaseDuration is the node Lease's duration; it is renewed at a quarter.
	LeaseDuration time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the exponential backoff of
	// failed syncs, which are retried forever.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
}

// Defaults for ManagerConfig.
const (
	DefaultWorkers          = 32
	DefaultQPS              = 500
	DefaultBurst            = 1000
	DefaultRequestTimeout   = 15 * time.Second
	DefaultPingTimeout      = 5 * time.Second
	DefaultPingInterval     = 5 * time.Second
	DefaultResyncPeriod     = 30 * time.Second
	DefaultCapacityInterval = 30 * time.Second
	DefaultGCInterval       = 30 * time.Second
	DefaultLeaseDuration    = 40 * time.Second
	DefaultRetryBaseDelay   = 100 * time.Millisecond
	DefaultRetryMaxDelay    = 30 * time.Second
	DefaultKubeletPort      = 10250
)

func (c *ManagerConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.QPS <= 0 {
		c.QPS = DefaultQPS
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = DefaultKubeletPort
	}
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.PingTimeout, DefaultPingTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.ResyncPeriod, DefaultResyncPeriod)
	def(&c.CapacityInterval, DefaultCapacityInterval)
	def(&c.GCInterval, DefaultGCInterval)
	def(&c.LeaseDuration, DefaultLeaseDuration)
	def(&c.RetryBaseDelay, DefaultRetryBaseDelay)
	def(&c.RetryMaxDelay, DefaultRetryMaxDelay)
	if c.NodeIP == "" {
		c.NodeIP = hostIP()
	}
}

func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !n.IP.IsLoopback() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// ErrNodeExists is returned by Add for a name already running.
var ErrNodeExists = errors.New("virtual node already exists")

// ErrNodeNotFound is returned by Update and Remove for an unknown name.
var ErrNodeNotFound = errors.New("virtual node not found")

// Manager runs many virtual nodes in one process. Add, Update and Remove may
// be called from any goroutine, before or while Run runs.
type Manager struct {
	cfg     ManagerConfig
	log     *slog.Logger
	metrics *nodeMetrics
	client  kubernetes.Interface

	mu       sync.Mutex
	nodes    map[string]*managedNode
	cleanups map[string]*pendingCleanup // of removed nodes, by name
	runCtx   context.Context            // nil until Run starts
	shared   masterShared
	bcast    record.EventBroadcaster
}

type managedNode struct {
	spec   NodeSpec
	vn     *VirtualNode
	cancel context.CancelFunc
}

// pendingCleanup is the cleanup of a removed node's remote (remoteCleanup)
// running in the background.
type pendingCleanup struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager checks the config and connects to the master (no call is made
// until Run, except to derive MasterID when it is empty).
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Master == nil {
		return nil, errors.New("new manager: master config is required")
	}
	cfg.setDefaults()
	client, err := kubernetes.NewForConfig(clientConfig(cfg.Master, cfg.QPS, cfg.Burst))
	if err != nil {
		return nil, fmt.Errorf("new manager: master client: %w", err)
	}
	metrics, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new manager: register metrics: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, metrics: metrics, client: client,
		nodes: map[string]*managedNode{}, cleanups: map[string]*pendingCleanup{}}
	return m, nil
}

// clientConfig copies a rest.Config with our limits and protobuf encoding.
func clientConfig(c *rest.Config, qps float32, burst int) *rest.Config {
	rc := rest.CopyConfig(c)
	rc.QPS, rc.Burst = qps, burst
	// Every watch stream would keep a gzip reader (about 40 KB) for as long
	// as it runs, a dozen per virtual node; protobuf is compact already.
	rc.DisableCompression = true
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if rc.UserAgent == "" {
		rc.UserAgent = "atoll-vnode"
	}
	return rc
}

// MasterIdentity returns the default master identity: a hash of the UID of the
// master's kube-system namespace, stable for the cluster's life.
func MasterIdentity(ctx context.Context, client kubernetes.Interface) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	ns, err := client.CoreV1().Namespaces().Get(cctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get kube-system namespace: %w", err)
	}
	sum := sha256.Sum256([]byte(ns.UID))
	return hex.EncodeToString(sum[:])[:16], nil
}

// Run starts the shared master informers and every added node, and blocks
// until ctx is cancelled; then it stops all nodes and the cleanups of
// removed ones (see Remove) and returns.
func (m *Manager) Run(ctx context.Context) error {
	if m.cfg.MasterID == "" {
		id, err := MasterIdentity(ctx, m.client)
		if err != nil {
			return fmt.Errorf("derive master identity: %w", err)
		}
		m.cfg.MasterID = id
	}
	m.log.Info("manager starting", "masterID", m.cfg.MasterID, "nodeIP", m.cfg.NodeIP)
	bcast := record.NewBroadcaster(record.WithContext(ctx))
	bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")})
	shared, err := newMasterShared(m.client, m.cfg.ResyncPeriod, func(node string) record.EventRecorder {
		return bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "atoll-vnode", Host: node})
	})
	if err != nil {
		bcast.Shutdown()
		return fmt.Errorf("master informers: %w", err)
	}
	shared.start(ctx.Done())

	m.mu.Lock()
	m.runCtx, m.shared, m.bcast = ctx, shared, bcast
	for _, n := range m.nodes {
		if err := m.startLocked(n); err != nil {
			m.log.Error("start node", "node", n.spec.Name, "err", err)
		}
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.mu.Lock()
	nodes := make([]*managedNode, 0, len(m.nodes))
	for _, n := range m.nodes {
		nodes = append(nodes, n)
	}
	cleanups := make([]*pendingCleanup, 0, len(m.cleanups))
	for _, c := range m.cleanups {
		cleanups = append(cleanups, c)
	}
	m.runCtx = nil
	m.mu.Unlock()
	for _, n := range nodes {
		if n.vn != nil {
			<-n.vn.Done()
		}
	}
	for _, c := range cleanups {
		<-c.done
	}
	shared.shutdown()
	bcast.Shutdown()
	return nil
}

func (m *Manager) startLocked(n *managedNode) error {
	if m.runCtx == nil {
		return nil // started by Run
	}
	remote, err := kubernetes.NewForConfig(clientConfig(n.spec.Remote, m.cfg.QPS, m.cfg.Burst))
	if err != nil {
		return fmt.Errorf("remote client for %s: %w", n.spec.Name, err)
	}
	// A virtual node takes the per-process knobs from the Manager's config.
	vn := newVirtualNode(n.spec, m.cfg, m.shared, remote, m.log, m.metrics)
	ctx, cancel := context.WithCancel(m.runCtx)
	n.vn, n.cancel = vn, cancel
	go func() {
		if err := vn.run(ctx); err != nil {
			vn.log.Error("virtual node stopped", "err", err)
		}
	}()
	return nil
}

// Add starts a virtual node for spec. It returns once the node is started
// (its caches may still be syncing; see Health). The cleanup of a removed
// node of the same name stops first: what is left of it in the remote is
// the new node's to adopt or collect.
func (m *Manager) Add(spec NodeSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	for c := m.cleanups[spec.Name]; c != nil; c = m.cleanups[spec.Name] {
		delete(m.cleanups, spec.Name)
		m.mu.Unlock()
		c.cancel()
		<-c.done
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	if _, ok := m.nodes[spec.Name]; ok {
		return fmt.Errorf("add %s: %w", spec.Name, ErrNodeExists)
	}
	n := &managedNode{spec: spec.clone()}
	if err := m.startLocked(n); err != nil {
		return err
	}
	m.nodes[spec.Name] = n
	m.log.Info("virtual node added", "node", spec.Name)
	return nil
}

// Update applies a changed spec. Labels, taints, capacity caps and cordon are
// applied live without touching pods. A changed Remote, namespace mapping
// or RemoteNamespaces restarts the node's controllers: pods are adopted again by origin UID, and
// copies outside a changed mapping are deleted and made again inside it.
func (m *Manager) Update(spec NodeSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	n, ok := m.nodes[spec.Name]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("update %s: %w", spec.Name, ErrNodeNotFound)
	}
	restart := !sameRemote(n.spec.Remote, spec.Remote) || n.spec.namespaceMapping() != spec.namespaceMapping() ||
		!slices.Equal(n.spec.RemoteNamespaces, spec.RemoteNamespaces)
	n.spec = spec.clone()
	if !restart || n.vn == nil {
		if n.vn != nil {
			n.vn.setSpec(spec)
		}
		m.mu.Unlock()
		return nil
	}
	old := n.vn
	n.cancel()
	m.mu.Unlock()
	<-old.Done()
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.nodes[spec.Name]; ok && cur == n {
		return m.startLocked(n)
	}
	return nil
}

// sameRemote reports whether two configs reach the same API server with the
// same credentials (function fields such as Dial are not compared).
func sameRemote(a, b *rest.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Host == b.Host && a.APIPath == b.APIPath &&
		reflect.DeepEqual(a.TLSClientConfig, b.TLSClientConfig) &&
		a.BearerToken == b.BearerToken && a.BearerTokenFile == b.BearerTokenFile &&
		a.Username == b.Username && a.Password == b.Password &&
		reflect.DeepEqual(a.Impersonate, b.Impersonate) && reflect.DeepEqual(a.ExecProvider, b.ExecProvider)
}

// Remove stops a virtual node's controllers and deletes its Node object and
// Lease from the master. Draining the node first is the caller's job: pods
// still bound to it are left to the master's pod garbage collector.
//
// In the background, what the node made in its remote is deleted (its
// copies of pods, ConfigMaps and Secrets, and the namespaces it created
// that hold nothing else; see remoteCleanup), once the remote answers:
// Remove does not wait for it. A failed pass is reported (a Warn log, the
// gauge atoll_vnode_remote_cleanup_pending) and made again with backoff up
// to RetryMaxDelay for as long as Run runs. It reaches the remote with the
// credentials the node last ran with, held in memory, so credentials
// deleted along with the node's declaration do not stop it; credentials
// that expire meanwhile do (their renewal went with the node). Nothing
// records a cleanup outside this process: if it ends first, or Add brings
// the node back, what is left stays in the remote (a node of that name
// added again adopts or collects it).
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	n, ok := m.nodes[name]
	if ok {
		delete(m.nodes, name)
		m.startCleanupLocked(n)
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("remove %s: %w", name, ErrNodeNotFound)
	}
	if n.vn != nil {
		n.cancel()
		<-n.vn.Done()
	}
	m.metrics.forget(name)
	if err := DeleteVirtualNode(ctx, m.client, name, m.cfg.RequestTimeout); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	m.log.Info("virtual node removed", "node", name)
	return nil
}

// startCleanupLocked starts the cleanup of a node being removed (Remove).
// It begins once the node has stopped; Add of the same name stops it. A
// node that never ran in this process made nothing there.
func (m *Manager) startCleanupLocked(n *managedNode) {
	if n.vn == nil {
		return
	}
	name := n.spec.Name
	if m.runCtx == nil {
		m.log.Warn("manager stopping: what the removed node made in its remote stays", "node", name)
		return
	}
	client, err := metadata.NewForConfig(clientConfig(n.spec.Remote, m.cfg.QPS, m.cfg.Burst))
	if err != nil {
		m.log.Error("removed node's remote not cleaned up: what it made there stays", "node", name, "err", err)
		return
	}
	c := &remoteCleanup{node: name, masterID: m.cfg.MasterID, scope: n.vn.remote.scope, client: client, timeout: m.cfg.RequestTimeout, log: n.vn.log}
	ctx, cancel := context.WithCancel(m.runCtx)
	p := &pendingCleanup{cancel: cancel, done: make(chan struct{})}
	m.cleanups[name] = p
	m.metrics.cleanupPending.WithLabelValues(name).Set(1)
	stopped := n.vn.Done()
	go func() {
		defer func() {
			m.mu.Lock()
			if m.cleanups[name] == p {
				delete(m.cleanups, name)
			}
			m.mu.Unlock()
			m.metrics.cleanupPending.DeleteLabelValues(name)
			cancel()
			close(p.done)
		}()
		select {
		case <-stopped:
			c.runUntilDone(ctx, m.cfg.RetryBaseDelay, m.cfg.RetryMaxDelay)
		case <-ctx.Done():
		}
	}()
}

// Nodes returns the specs of the live nodes, sorted by name.
func (m *Manager) Nodes() []NodeSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeSpec, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n.spec.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Health returns the health of every live node, sorted by name. A node not
// started yet (Run not running) reports Reason "NotStarted".
func (m *Manager) Health() []NodeHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeHealth, 0, len(m.nodes))
	for name, n := range m.nodes {
		if n.vn == nil {
			out = append(out, NodeHealth{Name: name, Reason: "NotStarted"})
			continue
		}
		out = append(out, n.vn.Health())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Node returns the running virtual node of that name (for the kubelet API).
func (m *Manager) Node(name string) (*VirtualNode, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[name]
	if !ok || n.vn == nil {
		return nil, false
	}
	return n.vn, true
}

// MasterID returns the master identity in use (known once Run has started).
func (m *Manager) MasterID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.MasterID
}
