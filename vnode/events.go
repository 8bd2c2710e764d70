package vnode

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// remoteEvents re-emits remote Events about delegated pods on their master
// pods. Each remote Event is forwarded once per count increase
// (deduplicated), through a per-node token bucket (rate-limited); the master
// EventRecorder aggregates and spam-filters further.
type remoteEvents struct {
	v       *VirtualNode
	limiter *rate.Limiter

	mu   sync.Mutex
	seen map[types.UID]int32 // remote Event UID -> count forwarded
}

func newRemoteEvents(v *VirtualNode) *remoteEvents {
	return &remoteEvents{v: v, limiter: rate.NewLimiter(20, 100), seen: map[types.UID]int32{}}
}

func (e *remoteEvents) register() error {
	_, err := e.v.remote.events.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    e.forward,
		UpdateFunc: func(_, n any) { e.forward(n) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if ev, ok := obj.(*corev1.Event); ok {
				e.mu.Lock()
				delete(e.seen, ev.UID)
				e.mu.Unlock()
			}
		},
	})
	return err
}

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
	remote, err := e.v.remote.pods.Lister().Pods(ev.InvolvedObject.Namespace).Get(ev.InvolvedObject.Name)
	if err != nil || (ev.InvolvedObject.UID != "" && remote.UID != ev.InvolvedObject.UID) {
		return
	}
	k, ok := e.v.masterKeyOf(remote)
	if !ok {
		return
	}
	master, err := e.v.master.pods.Lister().Pods(k.namespace).Get(k.name)
	if err != nil || string(master.UID) != remote.Labels[LabelOriginUID] {
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
