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
// It watches the remote's pod Events with a reflector of its own and is that
// reflector's store: it keeps no Event, only the count each forwarded one
// was forwarded at. A remote cluster holds Events for all its pods, Atoll's
// or not, several each; an informer cache of them would grow with the
// remote, not with the pods this node runs.
type remoteEvents struct {
	v       *VirtualNode
	limiter *rate.Limiter
	synced  atomic.Bool

	mu   sync.Mutex
	seen map[types.UID]int32 // remote Event UID -> count forwarded
}

var _ cache.ReflectorStore = (*remoteEvents)(nil)

func newRemoteEvents(v *VirtualNode) *remoteEvents {
	return &remoteEvents{v: v, limiter: rate.NewLimiter(20, 100), seen: map[types.UID]int32{}}
}

// run lists and watches the remote's pod Events until ctx ends.
func (e *remoteEvents) run(ctx context.Context) {
	events := e.v.remote.client.CoreV1().Events(metav1.NamespaceAll)
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
	}, e.v.remote.client)
	cache.NewReflectorWithOptions(lw, &corev1.Event{}, e, cache.ReflectorOptions{Name: "remote pod events of " + e.v.name}).RunWithContext(ctx)
}

// hasSynced reports whether the first list was seen.
func (e *remoteEvents) hasSynced() bool { return e.synced.Load() }

// Add is called by the reflector for a new remote Event.
func (e *remoteEvents) Add(obj any) error { e.forward(obj); return nil }

// Update is called by the reflector for a changed remote Event.
func (e *remoteEvents) Update(obj any) error { e.forward(obj); return nil }

// Delete is called by the reflector for a deleted remote Event.
func (e *remoteEvents) Delete(obj any) error {
	if ev, ok := obj.(*corev1.Event); ok {
		e.mu.Lock()
		delete(e.seen, ev.UID)
		e.mu.Unlock()
	}
	return nil
}

// Replace is called by the reflector with a full list (the first one, and
// after a watch could not resume): what is new in it is forwarded, what is
// gone is forgotten.
func (e *remoteEvents) Replace(list []any, _ string) error {
	listed := make(map[types.UID]bool, len(list))
	for _, obj := range list {
		if ev, ok := obj.(*corev1.Event); ok {
			listed[ev.UID] = true
			e.forward(ev)
		}
	}
	e.mu.Lock()
	for uid := range e.seen {
		if !listed[uid] {
			delete(e.seen, uid)
		}
	}
	e.mu.Unlock()
	e.synced.Store(true)
	return nil
}

// Resync is part of the reflector's store; there is nothing to resync.
func (e *remoteEvents) Resync() error { return nil }

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
func (e *remoteEvents) forward(obj any) {
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
	e.mu.Lock()
	if e.seen[ev.UID] >= count {
		e.mu.Unlock()
		return
	}
	e.seen[ev.UID] = count
	e.mu.Unlock()
	if !e.limiter.Allow() {
		e.v.recordError("events", errEventDropped)
		return
	}
	e.v.recorder.Event(master, ev.Type, ev.Reason, "remote: "+ev.Message)
}

type eventDroppedError struct{}

func (eventDroppedError) Error() string { return "remote event dropped by rate limit" }

var errEventDropped = eventDroppedError{}
