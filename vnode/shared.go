package vnode

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// masterShared are master-side informers every virtual node of a Manager
// shares. Each has one event handler, a fanout, to which the nodes add
// theirs: an informer handler costs two goroutines and a 1,024-entry
// buffer, and one per node per informer would cost that for every node.
type masterShared struct {
	client     kubernetes.Interface
	configMaps coreinformers.ConfigMapInformer
	secrets    coreinformers.SecretInformer
	// nodes are the master's virtual nodes (label atoll.dev/cluster).
	nodes    coreinformers.NodeInformer
	recorder func(node string) record.EventRecorder

	configMapEvents, secretEvents, nodeEvents *fanout
}

// newMasterShared instantiates the shared informers of factory, whose
// informers hold every ConfigMap and Secret of the master, and of
// nodeFactory, whose Node informer holds the master's virtual nodes; the
// caller starts both.
func newMasterShared(client kubernetes.Interface, factory, nodeFactory informers.SharedInformerFactory, recorder func(string) record.EventRecorder) (masterShared, error) {
	s := masterShared{
		client:          client,
		configMaps:      factory.Core().V1().ConfigMaps(),
		secrets:         factory.Core().V1().Secrets(),
		nodes:           nodeFactory.Core().V1().Nodes(),
		recorder:        recorder,
		configMapEvents: &fanout{},
		secretEvents:    &fanout{},
		nodeEvents:      &fanout{},
	}
	for _, r := range []struct {
		inf cache.SharedIndexInformer
		f   *fanout
	}{{s.configMaps.Informer(), s.configMapEvents}, {s.secrets.Informer(), s.secretEvents}, {s.nodes.Informer(), s.nodeEvents}} {
		if _, err := r.inf.AddEventHandler(r.f); err != nil {
			return masterShared{}, err
		}
	}
	return s, nil
}

// fanout is a shared informer's one event handler: it passes every event
// to each handler added to it, in the informer's delivery goroutine (so a
// handler must not block). Unlike a handler added to the informer, one added
// here is not replayed the objects already cached.
type fanout struct {
	mu       sync.RWMutex
	next     int
	handlers map[int]cache.ResourceEventHandler
}

// add adds h and returns what removes it.
func (f *fanout) add(h cache.ResourceEventHandler) (remove func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handlers == nil {
		f.handlers = map[int]cache.ResourceEventHandler{}
	}
	id := f.next
	f.next++
	f.handlers[id] = h
	return func() {
		f.mu.Lock()
		delete(f.handlers, id)
		f.mu.Unlock()
	}
}

func (f *fanout) each(call func(cache.ResourceEventHandler)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, h := range f.handlers {
		call(h)
	}
}

// OnAdd implements cache.ResourceEventHandler.
func (f *fanout) OnAdd(obj any, initial bool) {
	f.each(func(h cache.ResourceEventHandler) { h.OnAdd(obj, initial) })
}

// OnUpdate implements cache.ResourceEventHandler.
func (f *fanout) OnUpdate(oldObj, newObj any) {
	f.each(func(h cache.ResourceEventHandler) { h.OnUpdate(oldObj, newObj) })
}

// OnDelete implements cache.ResourceEventHandler.
func (f *fanout) OnDelete(obj any) {
	f.each(func(h cache.ResourceEventHandler) { h.OnDelete(obj) })
}

// nodeNamed is a handler for the events of one Node.
func nodeNamed(name string, h cache.ResourceEventHandler) cache.ResourceEventHandler {
	return cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			n, ok := unwrapTombstone(obj).(*corev1.Node)
			return ok && n.Name == name
		},
		Handler: h,
	}
}
