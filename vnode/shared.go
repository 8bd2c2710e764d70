package vnode

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Indexes of the shared master pod cache.
const (
	// indexNode indexes master pods by the node they are bound to.
	indexNode = "atoll.dev/node"
	// indexDependencies indexes master pods by their node and the
	// ConfigMaps and Secrets they use (nodeDepKey).
	indexDependencies = "atoll.dev/dependencies"
)

// masterShared are master-side informers every virtual node of a Manager
// shares. Each has one event handler, a fanout, to which the nodes add
// theirs: an informer handler costs two goroutines and a 1,024-entry
// buffer, and one per node per informer would cost that for every node.
type masterShared struct {
	client kubernetes.Interface
	// deps are the ConfigMaps and Secrets of the namespaces whose pods the
	// nodes run.
	deps *dependencyCaches
	// nodes are the master's virtual nodes (label atoll.dev/cluster).
	nodes coreinformers.NodeInformer
	// podInformer holds the master's pods bound to any node (newMasterPodFactory),
	// each node reading its own through a podCache scoped to it.
	podInformer cache.SharedIndexInformer
	recorder    func(node string) record.EventRecorder

	configMapEvents, secretEvents *fanout
	// nodeEvents and podEvents pass each event only to the handlers added
	// for its Node, or for the node its pod is bound to.
	nodeEvents, podEvents *fanout

	factories []informers.SharedInformerFactory
}

// newMasterShared instantiates the shared informers: the master's virtual
// nodes (label atoll.dev/cluster), its pods bound to a node, and the
// ConfigMaps and Secrets of the namespaces the nodes look in (deps). The
// caller starts them (start) and stops them (shutdown).
func newMasterShared(client kubernetes.Interface, resync time.Duration, recorder func(string) record.EventRecorder) (masterShared, error) {
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelCluster }))
	podEvents := &fanout{route: nodeOf}
	podFactory := newMasterPodFactory(client, resync, podEvents)
	configMapEvents, secretEvents := &fanout{}, &fanout{}
	s := masterShared{
		client:          client,
		deps:            newDependencyCaches(client, resync, configMapEvents, secretEvents),
		nodes:           nodeFactory.Core().V1().Nodes(),
		podInformer:     podFactory.Core().V1().Pods().Informer(),
		recorder:        recorder,
		configMapEvents: configMapEvents,
		secretEvents:    secretEvents,
		nodeEvents:      &fanout{route: nameOfNode},
		podEvents:       podEvents,
		factories:       []informers.SharedInformerFactory{nodeFactory, podFactory},
	}
	if err := s.podInformer.AddIndexers(cache.Indexers{
		indexNode: func(obj any) ([]string, error) { return []string{nodeOf(obj)}, nil },
		indexDependencies: func(obj any) ([]string, error) {
			if p := podOf(obj); p != nil {
				return dependencyIndexKeys(p), nil
			}
			return nil, nil
		},
	}); err != nil {
		return masterShared{}, err
	}
	for _, r := range []struct {
		inf cache.SharedIndexInformer
		f   *fanout
	}{{s.nodes.Informer(), s.nodeEvents}, {s.podInformer, s.podEvents}} {
		if _, err := r.inf.AddEventHandler(r.f); err != nil {
			return masterShared{}, err
		}
	}
	return s, nil
}

func (s masterShared) start(stop <-chan struct{}) {
	for _, f := range s.factories {
		f.Start(stop)
	}
	s.deps.start(stop)
}

// shutdown waits for the informers to stop once start's channel is closed.
func (s masterShared) shutdown() {
	for _, f := range s.factories {
		f.Shutdown()
	}
	s.deps.shutdown()
}

// newMasterPodFactory returns the factory of the shared master pod informer:
// every pod bound to a node, with the transform leanMasterPod, keeping whole
// only pods of a node that has handlers in podEvents.
//
// One informer for all nodes rather than one per node selected by
// spec.nodeName=<node>, as a kubelet's is: the master's watch cache gives a
// watch with an exact spec.nodeName a 10-event buffer and closes it when the
// client falls 100 ms behind, which a node receiving thousands of pods at
// once does, over and over, each close followed by a relist of the node's
// pods (test/bench/RESULTS.md). spec.nodeName!= gets a buffer of up to 1,000.
func newMasterPodFactory(client kubernetes.Interface, resync time.Duration, podEvents *fanout) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithTransform(func(obj any) (any, error) { return leanMasterPod(obj, podEvents.routes) }),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }))
}

// fanout is a shared informer's one event handler: it passes every event
// to the handlers added to it, in the informer's delivery goroutine (so a
// handler must not block). With a route, an event goes only to the handlers
// added under the key route gives its object; without, to every handler.
// Unlike a handler added to the informer, one added here is not replayed the
// objects already cached.
type fanout struct {
	route func(obj any) string

	mu       sync.RWMutex
	next     int
	handlers map[string]map[int]cache.ResourceEventHandler
}

// add adds h for the objects of key (of a fanout without route, "") and
// returns what removes it.
func (f *fanout) add(key string, h cache.ResourceEventHandler) (remove func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handlers == nil {
		f.handlers = map[string]map[int]cache.ResourceEventHandler{}
	}
	if f.handlers[key] == nil {
		f.handlers[key] = map[int]cache.ResourceEventHandler{}
	}
	id := f.next
	f.next++
	f.handlers[key][id] = h
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.handlers[key], id)
		if len(f.handlers[key]) == 0 {
			delete(f.handlers, key)
		}
	}
}

// routes reports whether some handler was added under key.
func (f *fanout) routes(key string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.handlers[key]) > 0
}

func (f *fanout) each(obj any, call func(cache.ResourceEventHandler)) {
	key := ""
	if f.route != nil {
		key = f.route(unwrapTombstone(obj))
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, h := range f.handlers[key] {
		call(h)
	}
}

// OnAdd implements cache.ResourceEventHandler.
func (f *fanout) OnAdd(obj any, initial bool) {
	f.each(obj, func(h cache.ResourceEventHandler) { h.OnAdd(obj, initial) })
}

// OnUpdate implements cache.ResourceEventHandler. The route of the new
// object decides (a pod's node and a Node's name never change).
func (f *fanout) OnUpdate(oldObj, newObj any) {
	f.each(newObj, func(h cache.ResourceEventHandler) { h.OnUpdate(oldObj, newObj) })
}

// OnDelete implements cache.ResourceEventHandler.
func (f *fanout) OnDelete(obj any) {
	f.each(obj, func(h cache.ResourceEventHandler) { h.OnDelete(obj) })
}

// nameOfNode routes a Node's events by its name.
func nameOfNode(obj any) string {
	if n, ok := obj.(*corev1.Node); ok {
		return n.Name
	}
	return ""
}
