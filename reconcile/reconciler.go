package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
)

// Config configures a Reconciler. Source, Nodes, Master and Namespace are
// required; the rest has defaults.
type Config struct {
	// Source gives the revisions.
	Source Source
	// Nodes runs the virtual nodes.
	Nodes NodeSet
	// Master reaches the master cluster: draining, finding Atoll's nodes
	// left by an earlier process, Events and the status ConfigMap.
	Master kubernetes.Interface
	// Namespace is Atoll's own namespace (Events, status ConfigMap).
	Namespace string
	// Path is the fleet path inside a snapshot's Dir (default ".").
	Path string
	// Mode decides which credentials are accepted (default ModeGit).
	Mode Mode
	// Reporter writes commit statuses; nil: none.
	Reporter StatusReporter
	// StatusContext is the commit status context (default "atoll").
	StatusContext string
	// TargetURL is put on commit statuses.
	TargetURL string
	// MaxRemovalShare is the breaker's share (default DefaultMaxRemovalShare).
	MaxRemovalShare float64
	// DrainTimeout bounds draining a removed node (default DefaultDrainTimeout).
	DrainTimeout time.Duration
	// RetryInterval is how soon a pass with failed clusters or unready
	// nodes is repeated (default 5s).
	RetryInterval time.Duration
	// ResyncInterval is how often a settled fleet is compared again with
	// what is live (default 30s).
	ResyncInterval time.Duration
	// ReadyTimeout is how long declared nodes may stay unready before the
	// revision is reported as failed (default 2m). It keeps being watched:
	// nodes that become Ready later turn it into success.
	ReadyTimeout time.Duration
	// RequestTimeout bounds each API call (default 15s).
	RequestTimeout time.Duration
	// Registerer receives the metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Observer, if set, is told what happens (for a terminal UI).
	Observer func(Progress)
}

// ProgressKind says what a Progress is about.
type ProgressKind string

// The progress kinds.
const (
	// ProgressPlan: a plan is about to be applied (Plan is set).
	ProgressPlan ProgressKind = "plan"
	// ProgressInvalid: the revision is invalid or refused (Err is set).
	ProgressInvalid ProgressKind = "invalid"
	// ProgressDrain: a node is draining (Node, Remaining, Elapsed).
	ProgressDrain ProgressKind = "drain"
	// ProgressApplied: one change is done (Node, Action, Err if it failed).
	ProgressApplied ProgressKind = "applied"
	// ProgressStatus: the revision's status changed (Status).
	ProgressStatus ProgressKind = "status"
	// ProgressFetchError: the source failed (Err).
	ProgressFetchError ProgressKind = "fetch-error"
)

// Progress is one thing the reconciler reports while it works.
type Progress struct {
	Kind      ProgressKind
	Revision  string
	Plan      *Plan
	Node      string
	Action    Action
	Remaining int
	Elapsed   time.Duration
	Status    CommitStatus
	Err       error
}

// Reconciler makes the virtual nodes match the fleet declarations. It is
// level-triggered: every pass compares the declarations with what is live
// (the nodes it applied, plus Atoll's nodes found in the master), so a
// restart at any point converges.
type Reconciler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	drainer *Drainer

	mu sync.Mutex // guards status for Status()
	// the revision being applied (the last valid one)
	snap    *Snapshot
	desired []NodeSpec
	// the revision picked up last (may be invalid)
	current     string
	refused     string // revision the breaker refused last (logged once)
	fetchFailed bool
	pickedUp    time.Time
	counts      changeCounts
	// applied is the declaration applied per node, appliedRev its revision.
	applied    map[string]NodeSpec
	appliedRev map[string]string
	// running is the spec last given to the NodeSet (credentials resolved).
	running    map[string]NodeSpec
	clusterErr map[string]clusterError
	draining   map[string]bool
	reported   CommitStatus // last status reported successfully
	evented    string       // revision+state of the last Event
	status     FleetStatus

	ready chan struct{}
	once  sync.Once
}

type clusterError struct {
	msg  string
	time time.Time
}

type changeCounts struct{ added, updated, removed int }

// New checks cfg and returns a Reconciler; call Run.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.Source == nil:
		return nil, errors.New("new reconciler: source is required")
	case cfg.Nodes == nil:
		return nil, errors.New("new reconciler: node set is required")
	case cfg.Master == nil:
		return nil, errors.New("new reconciler: master client is required")
	case cfg.Namespace == "":
		return nil, errors.New("new reconciler: namespace is required")
	}
	cfg.Path = cmpOr(cfg.Path, ".")
	cfg.Mode = cmpOr(cfg.Mode, ModeGit)
	cfg.StatusContext = cmpOr(cfg.StatusContext, "atoll")
	cfg.DrainTimeout = cmpOr(cfg.DrainTimeout, DefaultDrainTimeout)
	cfg.RetryInterval = cmpOr(cfg.RetryInterval, 5*time.Second)
	cfg.ResyncInterval = cmpOr(cfg.ResyncInterval, 30*time.Second)
	cfg.ReadyTimeout = cmpOr(cfg.ReadyTimeout, 2*time.Minute)
	cfg.RequestTimeout = cmpOr(cfg.RequestTimeout, 15*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new reconciler: register metrics: %w", err)
	}
	r := &Reconciler{
		cfg: cfg, log: cfg.Logger, metrics: m,
		applied: map[string]NodeSpec{}, appliedRev: map[string]string{}, running: map[string]NodeSpec{},
		clusterErr: map[string]clusterError{}, draining: map[string]bool{},
		ready: make(chan struct{}),
	}
	r.drainer = &Drainer{
		Client: cfg.Master, Timeout: cfg.DrainTimeout, RequestTimeout: cfg.RequestTimeout, Logger: cfg.Logger,
		Progress: func(node string, remaining int, elapsed time.Duration) {
			r.observe(Progress{Kind: ProgressDrain, Node: node, Remaining: remaining, Elapsed: elapsed})
		},
	}
	return r, nil
}

// Ready is closed once Run has finished its first pass.
func (r *Reconciler) Ready() <-chan struct{} { return r.ready }

// Status returns a copy of the last outcome.
func (r *Reconciler) Status() FleetStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Clusters = slices.Clone(s.Clusters)
	return s
}

// Run reconciles on every change signal of the source, and again every
// RetryInterval while something is left to do, or every ResyncInterval.
// It blocks until ctx is cancelled and returns nil then.
func (r *Reconciler) Run(ctx context.Context) error {
	fetch := true
	for {
		again := r.pass(ctx, fetch)
		r.once.Do(func() { close(r.ready) })
		wait := r.cfg.ResyncInterval
		if again {
			wait = r.cfg.RetryInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.cfg.Source.Changes():
			t.Stop()
			fetch = true
		case <-t.C:
			// Compare again with live; fetch again only after a failure.
			fetch = r.fetchFailed
		}
	}
}

// pass runs one reconciliation and reports whether it should be repeated
// soon (failed clusters, unready nodes, a failed fetch).
func (r *Reconciler) pass(ctx context.Context, fetch bool) (again bool) {
	if fetch {
		again = r.fetch(ctx)
	}
	if r.snap == nil || ctx.Err() != nil {
		return again
	}
	// While the newest revision is invalid, the previous one stays applied
	// (level-triggered) but its status is not reported again.
	return r.applyCurrent(ctx, r.current == r.snap.Revision) || again
}

// fetch gets the current revision and, when it is new, loads it into
// r.snap and r.desired. An invalid revision leaves them as they were.
// It reports whether to try again soon.
func (r *Reconciler) fetch(ctx context.Context) (again bool) {
	snap, err := r.cfg.Source.Fetch(ctx)
	r.fetchFailed = err != nil
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		r.log.Error("fetch revision", "err", err)
		r.metrics.passes.WithLabelValues("fetch_error").Inc()
		r.observe(Progress{Kind: ProgressFetchError, Err: err})
		r.setStatus(func(s *FleetStatus) { s.Error = "fetch: " + err.Error() })
		r.writeStatus(ctx)
		if refused, ok := errors.AsType[RefusedRevision](err); ok {
			r.report(ctx, CommitStatus{Revision: refused.RefusedRevision(), State: StateFailure, Description: truncate("refused: "+firstLine(err.Error()), 140)})
		}
		return true
	}
	if snap.Revision == r.current {
		return false
	}
	// A new revision. Revisions it overtakes are marked success, "superseded
	// by": their changes are applied as part of it (its own status tells how
	// that went); a red mark would fail checks on commits nothing failed for.
	if prev := r.reported; prev.Revision != "" && prev.Revision != snap.Revision && prev.State == StatePending {
		r.report(ctx, CommitStatus{Revision: prev.Revision, State: StateSuccess, Description: "superseded by " + short(snap.Revision)})
	}
	for _, rev := range snap.Superseded {
		if rev != snap.Revision && rev != r.current {
			r.report(ctx, CommitStatus{Revision: rev, State: StateSuccess, Description: "superseded by " + short(snap.Revision)})
		}
	}
	r.current, r.pickedUp, r.counts = snap.Revision, time.Now(), changeCounts{}
	r.log.Info("revision picked up", "revision", snap.Revision)
	r.report(ctx, CommitStatus{Revision: snap.Revision, State: StatePending, Description: "applying " + short(snap.Revision)})

	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	_, desired, err := Load(lctx, snap.Dir, r.cfg.Path, WithMode(r.cfg.Mode))
	cancel()
	if err != nil {
		// Only running out of time may go better on a second try; any
		// other error is the revision's own.
		transient := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if transient {
			r.current = "" // load it again next time
		}
		r.log.Error("revision not applied; nothing changes", "revision", snap.Revision, "err", err)
		r.metrics.passes.WithLabelValues("invalid").Inc()
		r.observe(Progress{Kind: ProgressInvalid, Revision: snap.Revision, Err: err})
		r.finish(ctx, CommitStatus{Revision: snap.Revision, State: StateFailure, Description: "invalid: " + firstLine(err.Error())}, err)
		r.fetchFailed = transient
		return transient
	}
	r.snap, r.desired = &snap, desired
	return false
}

// applyCurrent plans the desired nodes of r.snap against live, checks the
// breaker, applies and reports. report says whether the outcome is about
// the current revision (false while an invalid revision is newest).
func (r *Reconciler) applyCurrent(ctx context.Context, report bool) (again bool) {
	snap := r.snap
	live, err := r.live(ctx)
	if err != nil {
		r.log.Error("list live nodes", "err", err)
		r.metrics.passes.WithLabelValues("retry").Inc()
		return true
	}
	plan := ComputePlan(r.desired, live)
	if err := CheckBreaker(plan, snap.Message, r.cfg.MaxRemovalShare); err != nil {
		r.metrics.passes.WithLabelValues("refused").Inc()
		if report && r.refused != snap.Revision {
			r.refused = snap.Revision
			r.log.Error("revision refused", "revision", snap.Revision, "err", err)
			r.observe(Progress{Kind: ProgressInvalid, Revision: snap.Revision, Err: err})
			r.finish(ctx, CommitStatus{Revision: snap.Revision, State: StateFailure, Description: err.Error()}, err)
		}
		return false
	}
	if !plan.Empty() {
		r.observe(Progress{Kind: ProgressPlan, Revision: snap.Revision, Plan: plan})
		r.log.Info("applying plan", "revision", snap.Revision, "summary", plan.Summary())
	}
	fleetDir := filepath.Join(snap.Dir, filepath.FromSlash(r.cfg.Path))
	for _, c := range plan.Changes {
		if ctx.Err() != nil {
			return false
		}
		var err error
		switch c.Action {
		case ActionAdd, ActionUpdate:
			err = r.put(ctx, c, fleetDir)
		case ActionRemove:
			err = r.remove(ctx, c.Name)
		}
		r.observe(Progress{Kind: ProgressApplied, Revision: snap.Revision, Node: c.Name, Action: c.Action, Err: err})
		if err != nil {
			r.metrics.clusterErrs.WithLabelValues(c.Name).Inc()
			r.clusterErr[c.Name] = clusterError{msg: err.Error(), time: time.Now()}
			r.log.Error("apply node", "node", c.Name, "action", c.Action, "err", err)
			continue
		}
		delete(r.clusterErr, c.Name)
		r.metrics.changes.WithLabelValues(string(c.Action)).Inc()
		if c.Action == ActionRemove {
			r.counts.removed++
			continue
		}
		// A node added again after an error counts once.
		if c.Live == nil || r.appliedRev[c.Name] == "" {
			r.counts.added++
		} else {
			r.counts.updated++
		}
		r.applied[c.Name] = *c.Desired
		r.appliedRev[c.Name] = snap.Revision
		r.running[c.Name] = withResolvedPath(*c.Desired, fleetDir)
	}
	// Nodes declared and unchanged carry this revision too.
	for _, d := range r.desired {
		if _, ok := r.applied[d.Name]; ok {
			r.appliedRev[d.Name] = snap.Revision
		}
	}
	for name := range r.clusterErr {
		if !slices.ContainsFunc(r.desired, func(n NodeSpec) bool { return n.Name == name }) && !slices.ContainsFunc(live, func(n NodeSpec) bool { return n.Name == name }) {
			delete(r.clusterErr, name)
		}
	}
	return r.evaluate(ctx, report)
}

// put adds or updates one node; the declaration is recorded as applied
// by the caller on success.
func (r *Reconciler) put(ctx context.Context, c Change, fleetDir string) error {
	spec := withResolvedPath(*c.Desired, fleetDir)
	if _, running := r.running[c.Name]; running {
		return r.cfg.Nodes.Update(ctx, spec)
	}
	return r.cfg.Nodes.Add(ctx, spec)
}

// remove cordons, drains and removes one node. A node this process does
// not run (left by an earlier one) is evicted once and deleted.
func (r *Reconciler) remove(ctx context.Context, name string) error {
	r.draining[name] = true
	defer delete(r.draining, name)
	start := time.Now()
	spec, running := r.running[name]
	if running && !spec.Cordon {
		spec.Cordon = true
		if err := r.cfg.Nodes.Update(ctx, spec); err != nil {
			return fmt.Errorf("cordon %s: %w", name, err)
		}
	}
	if err := cordonNode(ctx, r.cfg.Master, name, r.cfg.RequestTimeout); err != nil && !running {
		r.log.Warn("cordon node", "node", name, "err", err)
	}
	d := *r.drainer
	if !running {
		d.Timeout = time.Millisecond // no controller left to finish the pods
	}
	r.writeStatus(ctx)
	if err := d.Drain(ctx, name); err != nil {
		if ctx.Err() != nil {
			return err
		}
		if running {
			r.log.Warn("drain incomplete; removing the node anyway", "node", name, "err", err)
		}
	}
	r.metrics.drain.Observe(time.Since(start).Seconds())
	if err := r.cfg.Nodes.Remove(ctx, name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	delete(r.applied, name)
	delete(r.appliedRev, name)
	delete(r.running, name)
	return nil
}

// withResolvedPath returns spec with a path credential made absolute.
func withResolvedPath(spec NodeSpec, fleetDir string) NodeSpec {
	if spec.Credentials.Path != "" {
		spec.Credentials.Path = spec.Credentials.Resolve(fleetDir)
	}
	return spec
}
