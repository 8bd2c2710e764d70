package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// LabelCluster marks Atoll's virtual nodes in the master with the cluster name.
const LabelCluster = "atoll.dev/cluster"

// live returns the nodes as they are: what this process applied, plus
// Atoll's nodes in the master that it does not know (left by an earlier
// process), known by name only.
func (r *Reconciler) live(ctx context.Context) ([]NodeSpec, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	list, err := r.cfg.Master.CoreV1().Nodes().List(cctx, metav1.ListOptions{LabelSelector: LabelCluster})
	if err != nil {
		return nil, fmt.Errorf("list atoll nodes: %w", err)
	}
	out := make([]NodeSpec, 0, len(r.applied)+len(list.Items))
	for _, n := range r.applied {
		out = append(out, n)
	}
	for _, n := range list.Items {
		if _, ok := r.applied[n.Name]; !ok && n.Labels[LabelCluster] == n.Name {
			out = append(out, NodeSpec{Name: n.Name})
		}
	}
	return out, nil
}

// cordonNode marks a Node unschedulable directly (for a node no controller
// of this process keeps).
func cordonNode(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := client.CoreV1().Nodes().Patch(cctx, name, types.StrategicMergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("cordon %s: %w", name, err)
	}
	return nil
}

// evaluate looks at the declared nodes' readiness and the cluster errors,
// reports the outcome, and says whether to look again soon.
func (r *Reconciler) evaluate(ctx context.Context, report bool) (again bool) {
	states := map[string]NodeState{}
	for _, s := range r.cfg.Nodes.List() {
		states[s.Name] = s
	}
	var unready, failed []string
	ready := 0
	for _, d := range r.desired {
		ce, hasErr := r.clusterErr[d.Name]
		st, ok := states[d.Name]
		switch {
		case hasErr:
			failed = append(failed, d.Name+": "+ce.msg)
		case ok && st.Ready:
			ready++
		default:
			reason := st.Reason
			if !ok {
				reason = "not running"
			}
			unready = append(unready, d.Name+" ("+cmpOr(reason, "not ready")+")")
		}
	}
	r.metrics.nodes.WithLabelValues("ready").Set(float64(ready))
	r.metrics.nodes.WithLabelValues("unready").Set(float64(len(r.desired) - ready))

	counts := r.describeCounts(ready)
	var st CommitStatus
	switch {
	case len(failed) > 0:
		st = CommitStatus{State: StateFailure, Description: fmt.Sprintf("%d of %d clusters failed: %s", len(failed), len(r.desired), strings.Join(failed, "; "))}
		again = true
	case len(unready) == 0:
		st = CommitStatus{State: StateSuccess, Description: counts}
	case time.Since(r.pickedUp) > r.cfg.ReadyTimeout:
		st = CommitStatus{State: StateFailure, Description: "not ready: " + strings.Join(unready, ", ") + " · " + counts}
		again = true
	default:
		st = CommitStatus{State: StatePending, Description: "waiting for " + strings.Join(unready, ", ") + " · " + counts}
		again = true
	}
	if again {
		r.metrics.passes.WithLabelValues("retry").Inc()
	} else {
		r.metrics.passes.WithLabelValues("ok").Inc()
	}
	if report {
		st.Revision = r.snap.Revision
		r.finish(ctx, st, nil)
	} else {
		r.writeStatus(ctx)
	}
	return again
}

func (r *Reconciler) describeCounts(ready int) string {
	parts := []string{fmt.Sprintf("%d %s ready", ready, plural(ready, "node", "nodes"))}
	if r.counts.added > 0 {
		parts = append(parts, fmt.Sprintf("+%d added", r.counts.added))
	}
	if r.counts.updated > 0 {
		parts = append(parts, fmt.Sprintf("~%d updated", r.counts.updated))
	}
	if r.counts.removed > 0 {
		parts = append(parts, fmt.Sprintf("-%d removed", r.counts.removed))
	}
	return strings.Join(parts, " · ")
}

// finish reports a revision's status (deduplicated), emits an Event when
// the outcome changes, and stores the status ConfigMap.
func (r *Reconciler) finish(ctx context.Context, st CommitStatus, revErr error) {
	r.report(ctx, st)
	if st.State == StateSuccess {
		r.metrics.lastSuccess.SetToCurrentTime()
	}
	if st.State != StatePending {
		key := st.Revision + "\x00" + string(st.State)
		if r.evented != key {
			r.evented = key
			r.metrics.revisions.WithLabelValues(string(st.State)).Inc()
			r.event(ctx, st)
		}
	}
	r.setStatus(func(s *FleetStatus) {
		s.Revision, s.State, s.Description = st.Revision, st.State, st.Description
		s.Error = ""
		if revErr != nil {
			s.Error = revErr.Error()
		}
		if st.State == StateSuccess {
			s.Applied = st.Revision
		}
	})
	r.writeStatus(ctx)
}

// report sends st unless it was the last status sent.
func (r *Reconciler) report(ctx context.Context, st CommitStatus) {
	st.Context = r.cfg.StatusContext
	st.TargetURL = r.cfg.TargetURL
	if st == r.reported {
		return
	}
	r.observe(Progress{Kind: ProgressStatus, Revision: st.Revision, Status: st})
	if r.cfg.Reporter == nil {
		r.reported = st
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.cfg.Reporter.Report(cctx, st); err != nil {
		r.log.Error("report commit status", "revision", st.Revision, "state", st.State, "err", err)
		return
	}
	r.reported = st
}

// event records the outcome of a revision as a Kubernetes Event on the
// status ConfigMap.
func (r *Reconciler) event(ctx context.Context, st CommitStatus) {
	typ, reason := corev1.EventTypeNormal, "RevisionApplied"
	switch st.State {
	case StateFailure:
		typ, reason = corev1.EventTypeWarning, "RevisionFailed"
	case StateError:
		typ, reason = corev1.EventTypeWarning, "RevisionSuperseded"
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", StatusConfigMap, now.UnixNano()), Namespace: r.cfg.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "ConfigMap", APIVersion: "v1", Namespace: r.cfg.Namespace, Name: StatusConfigMap,
		},
		Reason:  reason,
		Message: truncate(short(st.Revision)+": "+st.Description, 1000),
		Type:    typ, Source: corev1.EventSource{Component: "atoll"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "atoll.dev/reconciler", ReportingInstance: "atoll",
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.cfg.Master.CoreV1().Events(r.cfg.Namespace).Create(cctx, ev, metav1.CreateOptions{}); err != nil {
		r.log.Warn("record event", "err", err)
	}
}

// setStatus changes the status under the lock and refreshes the clusters.
func (r *Reconciler) setStatus(f func(*FleetStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
}

// writeStatus refreshes the per-cluster part and stores the status.
func (r *Reconciler) writeStatus(ctx context.Context) {
	states := map[string]NodeState{}
	for _, s := range r.cfg.Nodes.List() {
		states[s.Name] = s
	}
	names := map[string]bool{}
	for _, d := range r.desired {
		names[d.Name] = true
	}
	for n := range r.applied {
		names[n] = true
	}
	for n := range r.clusterErr {
		names[n] = true
	}
	var clusters []ClusterStatus
	for _, n := range slices.Sorted(mapsKeys(names)) {
		st := states[n]
		cs := ClusterStatus{Name: n, Ready: st.Ready, Reason: st.Reason, DelegatedPods: st.DelegatedPods,
			Revision: r.appliedRev[n], LastError: st.LastError, Draining: r.draining[n]}
		if _, ok := states[n]; !ok {
			cs.Reason = "NotRunning"
		}
		if ce, ok := r.clusterErr[n]; ok {
			cs.LastError, cs.LastErrorTime = ce.msg, ce.time
		}
		clusters = append(clusters, cs)
	}
	r.mu.Lock()
	r.status.Clusters = clusters
	r.status.Updated = time.Now().UTC().Truncate(time.Second)
	s := r.status
	r.mu.Unlock()
	if err := writeStatus(ctx, r.cfg.Master, r.cfg.Namespace, &s, r.cfg.RequestTimeout); err != nil && ctx.Err() == nil {
		r.log.Warn("store status", "err", err)
	}
}

func (r *Reconciler) observe(p Progress) {
	if r.cfg.Observer != nil {
		r.cfg.Observer(p)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// short abbreviates a revision for messages.
func short(rev string) string {
	rev = strings.TrimPrefix(rev, "sha256:")
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + fmt.Sprintf(" (and %d more)", strings.Count(s[i:], "\n"))
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
