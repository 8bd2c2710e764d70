package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeSource serves whatever snapshot the test sets.
type fakeSource struct {
	mu      sync.Mutex
	snap    Snapshot
	err     error
	changes chan struct{}
}

func newFakeSource() *fakeSource { return &fakeSource{changes: make(chan struct{}, 1)} }

func (s *fakeSource) Fetch(context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, s.err
}
func (s *fakeSource) Changes() <-chan struct{} { return s.changes }

func (s *fakeSource) set(t *testing.T, rev, msg string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	s.mu.Lock()
	s.snap = Snapshot{Revision: rev, Dir: dir, Message: msg}
	s.mu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// fakeNodes is a NodeSet that also keeps the master's Node objects.
type fakeNodes struct {
	mu      sync.Mutex
	client  *fake.Clientset
	nodes   map[string]NodeSpec
	unready map[string]bool
	fail    map[string]error
	calls   []string
}

var _ NodeSet = (*fakeNodes)(nil)

func (f *fakeNodes) put(ctx context.Context, op string, spec NodeSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+spec.Name)
	if err := f.fail[spec.Name]; err != nil {
		return err
	}
	f.nodes[spec.Name] = spec
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: map[string]string{LabelCluster: spec.Name}}}
	node.Spec.Unschedulable = spec.Cordon
	if _, err := f.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = f.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		return err
	}
	return nil
}

func (f *fakeNodes) Add(ctx context.Context, s NodeSpec) error    { return f.put(ctx, "add", s) }
func (f *fakeNodes) Update(ctx context.Context, s NodeSpec) error { return f.put(ctx, "update", s) }
func (f *fakeNodes) Remove(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "remove "+name)
	delete(f.nodes, name)
	if err := f.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}
func (f *fakeNodes) List() []NodeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []NodeState
	for n := range f.nodes {
		out = append(out, NodeState{Name: n, Ready: !f.unready[n], Reason: map[bool]string{true: "RemoteDown"}[f.unready[n]]})
	}
	slices.SortFunc(out, func(a, b NodeState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fakeNodes) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// recorder is a StatusReporter keeping every status.
type recorder struct {
	mu       sync.Mutex
	statuses []CommitStatus
}

func (r *recorder) Report(_ context.Context, s CommitStatus) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, s)
	return nil
}

func (r *recorder) last() CommitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) == 0 {
		return CommitStatus{}
	}
	return r.statuses[len(r.statuses)-1]
}

type harness struct {
	src    *fakeSource
	nodes  *fakeNodes
	client *fake.Clientset
	rep    *recorder
	r      *Reconciler
}

func newHarness(t *testing.T, tune func(*Config)) *harness {
	t.Helper()
	client := fake.NewClientset()
	// Evictions delete the pod, as the API server does when allowed.
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(interface{ GetName() string })
		err := client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, a.GetNamespace(), ev.GetName())
		return true, nil, err
	})
	h := &harness{src: newFakeSource(), client: client, rep: &recorder{}}
	h.nodes = &fakeNodes{client: client, nodes: map[string]NodeSpec{}, unready: map[string]bool{}, fail: map[string]error{}}
	cfg := Config{
		Source: h.src, Nodes: h.nodes, Master: client, Namespace: "atoll-system", Reporter: h.rep,
		Mode: ModeWatch, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainTimeout: 2 * time.Second, RetryInterval: 10 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	return h
}

func clusterYAML(name, taint string) string {
	s := fmt.Sprintf(`apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: %s
spec:
  credentials:
    path: %s.kubeconfig
`, name, name)
	if taint != "" {
		s += "  node:\n    taints: [{key: " + taint + ", effect: NoSchedule}]\n"
	}
	return s
}

func fleetOf(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n+".yaml"] = clusterYAML(n, "")
	}
	return m
}

func TestReconcilerAddsUpdatesRemoves(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)

	h.src.set(t, "r1", "add a and b", fleetOf("a", "b"))
	if again := h.r.pass(ctx, true); again {
		t.Errorf("pass asks to retry after a clean apply")
	}
	if got, want := h.nodes.takeCalls(), []string{"add a", "add b"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := h.rep.last(); got.State != StateSuccess || got.Revision != "r1" || got.Description != "2 nodes ready · +2 added" || got.Context != "atoll" {
		t.Errorf("last status = %+v", got)
	}
	if !strings.HasSuffix(h.nodes.nodes["a"].Credentials.Path, "/a.kubeconfig") || !strings.HasPrefix(h.nodes.nodes["a"].Credentials.Path, "/") {
		t.Errorf("credentials path not resolved: %q", h.nodes.nodes["a"].Credentials.Path)
	}

	// A taint change is an update; the other node is untouched.
	files := fleetOf("a", "b")
	files["a.yaml"] = clusterYAML("a", "dedicated")
	h.src.set(t, "r2", "taint a", files)
	h.r.pass(ctx, true)
	if got, want := h.nodes.takeCalls(), []string{"update a"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := h.nodes.nodes["a"].Taints; len(got) != 2 || got[0].Key != "dedicated" || got[1] != ProviderTaint {
		t.Errorf("taints = %v", got)
	}
	if got := h.rep.last().Description; got != "2 nodes ready · ~1 updated" {
		t.Errorf("description = %q", got)
	}

	// Removing b: cordon, evict its pod, remove.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "b"}}
	if _, err := h.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	delete(files, "b.yaml")
	h.src.set(t, "r3", "remove b", files)
	h.r.pass(ctx, true)
	if got, want := h.nodes.takeCalls(), []string{"update b", "remove b"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v (cordon, then remove)", got, want)
	}
	if _, err := h.client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod not evicted: %v", err)
	}
	if !evicted(h.client, "default/p") {
		t.Errorf("no eviction was requested")
	}
	if got := h.rep.last(); got.State != StateSuccess || got.Description != "1 node ready · -1 removed" {
		t.Errorf("last status = %+v", got)
	}

	// The outcome is stored for `atoll status` and recorded as Events.
	st, err := ReadStatus(ctx, h.client, "atoll-system")
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied != "r3" || len(st.Clusters) != 1 || st.Clusters[0].Name != "a" || !st.Clusters[0].Ready || st.Clusters[0].Revision != "r3" {
		t.Errorf("stored status = %+v", st)
	}
	evs, _ := h.client.CoreV1().Events("atoll-system").List(ctx, metav1.ListOptions{})
	if len(evs.Items) != 3 {
		t.Errorf("events = %d, want one per revision outcome (3)", len(evs.Items))
	}
}

func evicted(c *fake.Clientset, key string) bool {
	for _, a := range c.Actions() {
		if a.GetVerb() == "create" && a.GetSubresource() == "eviction" {
			if a.GetNamespace()+"/"+a.(k8stesting.CreateAction).GetObject().(interface{ GetName() string }).GetName() == key {
				return true
			}
		}
	}
	return false
}

func TestReconcilerInvalidRevisionChangesNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.src.set(t, "r1", "", fleetOf("a"))
	h.r.pass(ctx, true)
	h.nodes.takeCalls()

	files := fleetOf("a")
	files["b.yaml"] = "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: b\nspec:\n  credentials: {path: b}\n  bogus: 1\n"
	delete(files, "a.yaml") // would remove a if it were applied
	h.src.set(t, "r2", "", files)
	h.r.pass(ctx, true)
	if got := h.nodes.takeCalls(); len(got) != 0 {
		t.Errorf("an invalid revision changed nodes: %v", got)
	}
	got := h.rep.last()
	if got.State != StateFailure || got.Revision != "r2" || !strings.Contains(got.Description, "b.yaml:7") {
		t.Errorf("status = %+v, want failure naming b.yaml:7", got)
	}
	st, _ := ReadStatus(ctx, h.client, "atoll-system")
	if !strings.Contains(st.Error, "b.yaml:7") || st.Applied != "r1" {
		t.Errorf("stored status = %+v", st)
	}
	// Later passes keep r1 applied and do not report again.
	n := len(h.rep.statuses)
	h.r.pass(ctx, false)
	if len(h.rep.statuses) != n || len(h.nodes.takeCalls()) != 0 {
		t.Errorf("a resync after an invalid revision reported or changed something")
	}
	// The next good revision heals.
	h.src.set(t, "r3", "", fleetOf("a", "c"))
	h.r.pass(ctx, true)
	if got := h.nodes.takeCalls(); !slices.Equal(got, []string{"add c"}) {
		t.Errorf("calls = %v", got)
	}
	if got := h.rep.last(); got.State != StateSuccess || got.Revision != "r3" {
		t.Errorf("status = %+v", got)
	}
}

func TestReconcilerBreaker(t *testing.T) {
	tests := []struct {
		name      string
		message   string
		wantState CommitState
		wantCalls []string
	}{
		{name: "refused without trailer", message: "drop everything", wantState: StateFailure},
		{name: "applied with trailer", message: "drop everything\n\nAtoll-Allow-Removal: 2", wantState: StateSuccess,
			wantCalls: []string{"update a", "remove a", "update b", "remove b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, nil)
			h.src.set(t, "r1", "", fleetOf("a", "b"))
			h.r.pass(ctx, true)
			h.nodes.takeCalls()
			h.src.set(t, "r2", tt.message, map[string]string{"README.md": "nothing declared"})
			h.r.pass(ctx, true)
			if got := h.nodes.takeCalls(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", got, tt.wantCalls)
			}
			got := h.rep.last()
			if got.State != tt.wantState || got.Revision != "r2" {
				t.Errorf("status = %+v, want %s", got, tt.wantState)
			}
			if tt.wantState == StateFailure && !strings.Contains(got.Description, AllowRemovalTrailer) {
				t.Errorf("refusal does not say how to override: %q", got.Description)
			}
		})
	}
}

func TestReconcilerClusterErrorIsRetriedOthersProceed(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.nodes.fail["b"] = fmt.Errorf("read secret b-kubeconfig: not found: %w", ErrCredentials)
	h.src.set(t, "r1", "", fleetOf("a", "b"))
	if again := h.r.pass(ctx, true); !again {
		t.Errorf("pass does not ask to retry a failed cluster")
	}
	if _, ok := h.nodes.nodes["a"]; !ok {
		t.Errorf("cluster a not added while b failed")
	}
	got := h.rep.last()
	if got.State != StateFailure || !strings.Contains(got.Description, "b: read secret b-kubeconfig") {
		t.Errorf("status = %+v", got)
	}
	st, _ := ReadStatus(ctx, h.client, "atoll-system")
	if i := slices.IndexFunc(st.Clusters, func(c ClusterStatus) bool { return c.Name == "b" }); i < 0 || st.Clusters[i].LastError == "" {
		t.Errorf("stored status lacks b's error: %+v", st.Clusters)
	}
	delete(h.nodes.fail, "b")
	h.nodes.takeCalls()
	h.r.pass(ctx, false)
	if got := h.nodes.takeCalls(); !slices.Equal(got, []string{"add b"}) {
		t.Errorf("retry calls = %v", got)
	}
	if got := h.rep.last(); got.State != StateSuccess || got.Description != "2 nodes ready · +2 added" {
		t.Errorf("status = %+v", got)
	}
}

func TestReconcilerWaitsForReady(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.ReadyTimeout = time.Hour })
	h.nodes.unready["a"] = true
	h.src.set(t, "r1", "", fleetOf("a"))
	if again := h.r.pass(ctx, true); !again {
		t.Errorf("pass does not ask to look again at an unready node")
	}
	if got := h.rep.last(); got.State != StatePending || !strings.Contains(got.Description, "a (RemoteDown)") {
		t.Errorf("status = %+v", got)
	}
	h.nodes.unready["a"] = false
	h.r.pass(ctx, false)
	if got := h.rep.last(); got.State != StateSuccess {
		t.Errorf("status = %+v", got)
	}
}

func TestReconcilerRemovesNodesLeftByEarlierProcess(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	for _, n := range []string{"a", "stale"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{LabelCluster: n}}}
		if _, err := h.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.src.set(t, "r1", "", fleetOf("a", "b"))
	h.r.pass(ctx, true)
	if got, want := h.nodes.takeCalls(), []string{"add b", "add a", "remove stale"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	nodes, _ := h.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if len(nodes.Items) != 2 {
		t.Errorf("nodes = %d, want 2 (no duplicates, stale gone)", len(nodes.Items))
	}
}

func TestReconcilerSupersedesPendingRevision(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.ReadyTimeout = time.Hour })
	h.nodes.unready["a"] = true
	h.src.set(t, "r1", "", fleetOf("a"))
	h.r.pass(ctx, true)
	h.src.set(t, "r2", "", fleetOf("a", "b"))
	h.r.pass(ctx, true)
	if !slices.ContainsFunc(h.rep.statuses, func(s CommitStatus) bool {
		return s.Revision == "r1" && s.State == StateSuccess && strings.Contains(s.Description, "superseded")
	}) {
		t.Errorf("r1 not marked superseded: %+v", h.rep.statuses)
	}
}

func TestReconcilerRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := newHarness(t, nil)
	h.src.set(t, "r1", "", fleetOf("a"))
	done := make(chan error)
	go func() { done <- h.r.Run(ctx) }()
	<-h.r.Ready()
	h.src.set(t, "r2", "", fleetOf("a", "b"))
	deadline := time.Now().Add(5 * time.Second)
	for h.r.Status().Applied != "r2" {
		if time.Now().After(deadline) {
			t.Fatalf("r2 not applied: %+v", h.r.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestDrainerRetriesRefusedEvictions(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "m"}},
	)
	refusals := 2
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if refusals > 0 {
			refusals--
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 1)
		}
		err := client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "ns", "guarded")
		return true, nil, err
	})
	var rounds []int
	d := &Drainer{Client: client, Interval: time.Millisecond, Timeout: 5 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Progress: func(_ string, n int, _ time.Duration) { rounds = append(rounds, n) }}
	if err := d.Drain(ctx, "n"); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	if want := []int{1, 1, 1, 0}; !slices.Equal(rounds, want) {
		t.Errorf("pods left per round = %v, want %v", rounds, want)
	}
	if _, err := client.CoreV1().Pods("ns").Get(ctx, "elsewhere", metav1.GetOptions{}); err != nil {
		t.Errorf("a pod of another node was touched: %v", err)
	}

	// A budget that never allows it: the drain gives up at the timeout.
	refusals = 1 << 30
	client.Tracker().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"}})
	d.Timeout = 50 * time.Millisecond
	if err := d.Drain(ctx, "n"); !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Drain = %v, want ErrDrainTimeout", err)
	}
}

// refusedError is a Fetch error refusing a commit, as an unsigned commit's.
type refusedError struct{ rev string }

func (e refusedError) Error() string           { return "verify commit " + e.rev + ": commit not signed" }
func (e refusedError) RefusedRevision() string { return e.rev }

// TestRefusedRevisionFailsItsCommit: a source refusing a commit fails that
// commit's status and leaves what was applied as it is.
func TestRefusedRevisionFailsItsCommit(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.src.set(t, "r1", "add a", fleetOf("a"))
	h.r.pass(ctx, true)
	h.nodes.takeCalls()

	h.src.mu.Lock()
	h.src.err = fmt.Errorf("fetch: %w", refusedError{rev: "r2"})
	h.src.mu.Unlock()
	if again := h.r.pass(ctx, true); !again {
		t.Error("a refused fetch does not ask to retry")
	}
	h.rep.mu.Lock()
	statuses := slices.Clone(h.rep.statuses)
	h.rep.mu.Unlock()
	if !slices.ContainsFunc(statuses, func(s CommitStatus) bool {
		return s.Revision == "r2" && s.State == StateFailure && strings.Contains(s.Description, "refused: fetch: verify commit r2: commit not signed")
	}) {
		t.Errorf("statuses = %+v, want r2 failed as refused", statuses)
	}
	if calls := h.nodes.takeCalls(); len(calls) != 0 {
		t.Errorf("calls after a refused revision = %v, want none", calls)
	}
}
