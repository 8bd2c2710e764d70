package vnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// DependenciesRole is the ClusterRole of deploy/master that lets Atoll read
// the ConfigMaps and Secrets of a namespace once it is bound there.
const DependenciesRole = "atoll-pod-dependencies"

// errDependencyCacheSyncing: a namespace's ConfigMaps or Secrets are not
// cached yet; what needs them is tried again.
var errDependencyCacheSyncing = errors.New("not cached yet")

// DependencyAccessError says Atoll may not read a kind of dependency in a
// namespace: the namespace has no binding of DependenciesRole.
type DependencyAccessError struct {
	Kind      DependencyKind
	Namespace string
	Err       error
}

func (e *DependencyAccessError) Error() string {
	return fmt.Sprintf("Atoll may not read the %ss of namespace %s: bind the ClusterRole %s to Atoll's ServiceAccount in it (%v)",
		lowerKind(e.Kind), e.Namespace, DependenciesRole, e.Err)
}

func (e *DependencyAccessError) Unwrap() error { return e.Err }

// dependencyCaches hold the master's ConfigMaps and Secrets one namespace
// at a time. A namespace's informers start the first time a virtual node
// looks up one of its objects (a pod's dependency, the origin of a remote
// copy), so Atoll reads ConfigMaps and Secrets only in the namespaces
// whose pods it runs, with the rights bound there (DependenciesRole), and
// caches no others. Every node of a Manager shares them; their events go
// to configMapEvents and secretEvents. Caches stay until the Manager stops.
type dependencyCaches struct {
	client                        kubernetes.Interface
	resync                        time.Duration
	configMapEvents, secretEvents *fanout

	mu   sync.Mutex
	stop <-chan struct{} // nil until start
	byNS map[string]*namespaceCaches
}

// namespaceCaches are one namespace's ConfigMap and Secret informers.
type namespaceCaches struct {
	factory    informers.SharedInformerFactory
	configMaps coreinformers.ConfigMapInformer
	secrets    coreinformers.SecretInformer

	mu sync.Mutex
	// denied is, by kind, the last list or watch error when it said
	// Forbidden.
	denied map[DependencyKind]error
}

func newDependencyCaches(client kubernetes.Interface, resync time.Duration, configMapEvents, secretEvents *fanout) *dependencyCaches {
	return &dependencyCaches{client: client, resync: resync, configMapEvents: configMapEvents, secretEvents: secretEvents,
		byNS: map[string]*namespaceCaches{}}
}

// start starts the caches made so far and those made from now on.
func (c *dependencyCaches) start(stop <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stop = stop
	for _, nc := range c.byNS {
		nc.factory.Start(stop)
	}
}

// shutdown waits for the informers to stop once start's channel is closed.
func (c *dependencyCaches) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.byNS {
		nc.factory.Shutdown()
	}
}

// namespace returns the caches of ns, made (and started, after start) the
// first time.
func (c *dependencyCaches) namespace(ns string) *namespaceCaches {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nc, ok := c.byNS[ns]; ok {
		return nc
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, c.resync,
		informers.WithNamespace(ns), informers.WithTransform(dropManagedFields))
	nc := &namespaceCaches{factory: factory, configMaps: factory.Core().V1().ConfigMaps(), secrets: factory.Core().V1().Secrets(),
		denied: map[DependencyKind]error{}}
	for _, r := range []struct {
		kind DependencyKind
		inf  cache.SharedIndexInformer
		f    *fanout
	}{{KindConfigMap, nc.configMaps.Informer(), c.configMapEvents}, {KindSecret, nc.secrets.Informer(), c.secretEvents}} {
		// Neither can fail on an informer not started.
		_, _ = r.inf.AddEventHandler(r.f)
		_ = r.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { nc.listed(r.kind, err) })
	}
	c.byNS[ns] = nc
	if c.stop != nil {
		factory.Start(c.stop)
	}
	return nc
}

// listed records a failed list or watch of kind: a Forbidden one is what
// ready reports until the cache syncs.
func (nc *namespaceCaches) listed(kind DependencyKind, err error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if apierrors.IsForbidden(err) {
		nc.denied[kind] = err
	} else {
		delete(nc.denied, kind)
	}
}

// ready returns nil once inf, the informer of kind in ns, has synced; a
// *DependencyAccessError while it may not list; errDependencyCacheSyncing
// otherwise.
func (nc *namespaceCaches) ready(kind DependencyKind, ns string, inf cache.SharedIndexInformer) error {
	if inf.HasSynced() {
		return nil
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if err := nc.denied[kind]; err != nil {
		return &DependencyAccessError{Kind: kind, Namespace: ns, Err: err}
	}
	return fmt.Errorf("%ss of namespace %s: %w", lowerKind(kind), ns, errDependencyCacheSyncing)
}

// configMap returns the master's ConfigMap ns/name from the cache (a
// NotFound error when it does not exist), or why the cache cannot tell.
func (c *dependencyCaches) configMap(ns, name string) (*corev1.ConfigMap, error) {
	nc := c.namespace(ns)
	if err := nc.ready(KindConfigMap, ns, nc.configMaps.Informer()); err != nil {
		return nil, err
	}
	return nc.configMaps.Lister().ConfigMaps(ns).Get(name)
}

// secret is configMap for a Secret.
func (c *dependencyCaches) secret(ns, name string) (*corev1.Secret, error) {
	nc := c.namespace(ns)
	if err := nc.ready(KindSecret, ns, nc.secrets.Informer()); err != nil {
		return nil, err
	}
	return nc.secrets.Lister().Secrets(ns).Get(name)
}
