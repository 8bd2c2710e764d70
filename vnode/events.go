package vnode

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// remoteEvents re-emits remote Events about delegated pods on their master
// pods. Each remote Event is forwarded once per count increase
// (deduplicated), through a per-node token bucket (rate-limited); the master
// EventRecorder aggregates and spam-filters further.
//
// It watches the remote's pod Events with reflectors of its own, one for
// the cluster or one per namespace of a namespaced node, and is their
// stores (eventStore): it keeps no Event, only the count each forwarded one
// was forwarded at. A remote cluster holds Events for all its pods, Atoll's
// or not, several each; an informer cache of them would grow with the
// remote, not with the pods this node runs.
type remoteEvents struct {
	v       *VirtualNode
	limiter *rate.Limiter
	stores  []*eventStore
}

// eventStore is the store of one reflector of remote pod Events.
type eventStore struct {
	e         *remoteEvents
	namespace string
	synced    atomic.Bool

	mu   sync.Mutex
	seen map[types.UID]int32 // remote Event UID -> count forwarded
}

var _ cache.ReflectorStore = (*eventStore)(nil)

func newRemoteEvents(v *VirtualNode) *remoteEvents {
	e := &remoteEvents{v: v, limiter: rate.NewLimiter(20, 100)}
	for _, ns := range v.remote.scope.informerNamespaces() {
		e.stores = append(e.stores, &eventStore{e: e, namespace: ns, seen: map[types.UID]int32{}})
	}
	return e
}

// run lists and watches the remote's pod Events until ctx ends.
func (e *remoteEvents) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range e.stores {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Wait()
}

// hasSynced reports whether every reflector's first list was seen.
func (e *remoteEvents) hasSynced() bool {
	for _, s := range e.stores {
		if !s.synced.Load() {
			return false
		}
	}
	return true
}

// run lists and watches the pod Events of the store's namespace.
func (s *eventStore) run(ctx context.Context) {
	v := s.e.v
	events := v.remote.client.CoreV1().Events(s.namespace)
	podEvents := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("involvedObject.kind", "Pod").String()
	}
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			podEvents(&o)
			return events.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			podEvents(&o)
			return events.Watch(ctx, o)
		},
	}, v.remote.client)
	name := "remote pod events of " + v.name
	if s.namespace != metav1.NamespaceAll {
		name += " in " + s.namespace
	}
	cache.NewReflectorWithOptions(lw, &corev1.Event{}, s, cache.ReflectorOptions{Name: name}).RunWithContext(ctx)
}

// Add is called by the reflector for a new remote Event.
func (s *eventStore) Add(obj any) error { s.forward(obj); return nil }

// Update is called by the reflector for a changed remote Event.
func (s *eventStore) Update(obj any) error { s.forward(obj); return nil }

// Delete is called by the reflector for a deleted remote Event.
func (s *eventStore) Delete(obj any) error {
	if ev, ok := obj.(*corev1.Event); ok {
		s.mu.Lock()
		delete(s.seen, ev.UID)
		s.mu.Unlock()
	}
	return nil
}

// Replace is called by the reflector with a full list (the first one, and
// after a watch could not resume): what is new in it is forwarded, what is
// gone is forgotten.
func (s *eventStore) Replace(list []any, _ string) error {
	listed := make(map[types.UID]bool, len(list))
	for _, obj := range list {
		if ev, ok := obj.(*corev1.Event); ok {
			listed[ev.UID] = true
			s.forward(ev)
		}
	}
	s.mu.Lock()
	for uid := range s.seen {
		if !listed[uid] {
			delete(s.seen, uid)
		}
	}
	s.mu.Unlock()
	s.synced.Store(true)
	return nil
}

// Resync is part of the reflector's store; there is nothing to resync.
func (s *eventStore) Resync() error { return nil }

func eventCount(ev *corev1.Event) int32 {
	c := ev.Count
	if ev.Series != nil && ev.Series.Count > c {
		c = ev.Series.Count
	}
	if c == 0 {
		c = 1
	}
	return c
}

func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// forward re-emits one remote Event if it is about a pod this node manages,
// new since the node started, and not forwarded yet at this count.
func (s *eventStore) forward(obj any) {
	e := s.e
	ev, ok := obj.(*corev1.Event)
	if !ok || ev.InvolvedObject.Kind != "Pod" {
		return
	}
	// Events from before this process started were forwarded by an
	// earlier one (or are history).
	if eventTime(ev).Before(e.v.started.Add(-time.Minute)) {
		return
	}
	remote, ok := e.v.remote.pods.meta(ev.InvolvedObject.Namespace, ev.InvolvedObject.Name)
	if !ok || (ev.InvolvedObject.UID != "" && remote.GetUID() != ev.InvolvedObject.UID) {
		return
	}
	k, ok := e.v.masterKeyOf(remote)
	if !ok {
		return
	}
	master, err := e.v.master.pods.get(k.namespace, k.name)
	if err != nil || string(master.UID) != remote.GetLabels()[LabelOriginUID] {
		return
	}
	count := eventCount(ev)
	s.mu.Lock()
	if s.seen[ev.UID] >= count {
		s.mu.Unlock()
		return
	}
	s.seen[ev.UID] = count
	s.mu.Unlock()
	if !e.limiter.Allow() {
		e.v.recordError("events", errEventDropped)
		return
	}
	e.v.recorder.Event(master, ev.Type, ev.Reason, "remote: "+ev.Message)
}

type eventDroppedError struct{}

func (eventDroppedError) Error() string { return "remote event dropped by rate limit" }

var errEventDropped = eventDroppedError{}
