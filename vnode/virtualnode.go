package vnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// keyKind says what a work item is about.
type keyKind uint8

const (
	keyPod keyKind = iota
	keyConfigMap
	keySecret
)

// workKey is one item in a virtual node's work queue, named by the master
// namespace and name; a stray one by the remote's (strayKey).
type workKey struct {
	kind      keyKind
	namespace string
	name      string
	stray     bool
}

// strayKey names a remote copy in a namespace the node's namespace mapping
// does not reach: one an earlier mapping made. Its sync deletes it.
func strayKey(kind keyKind, m metav1.Object) workKey {
	return workKey{kind: kind, namespace: m.GetNamespace(), name: m.GetName(), stray: true}
}

func (k workKey) String() string {
	s := "pod:"
	switch k.kind {
	case keyConfigMap:
		s = "configmap:"
	case keySecret:
		s = "secret:"
	}
	if k.stray {
		s = "stray " + s
	}
	return s + k.namespace + "/" + k.name
}

type masterSide struct {
	masterShared
	pods podCache
}

type remoteSide struct {
	client kubernetes.Interface
	// scope is the remote namespaces the node works in; the informers of
	// namespaced kinds hold only these (scopedInformer).
	scope           scope
	pods            podCache
	configMaps      scopedInformer
	secrets         scopedInformer
	serviceAccounts scopedInformer
	// nodes and namespaces are nil for a namespaced node, whose identity
	// may read neither.
	nodes      coreinformers.NodeInformer
	namespaces coreinformers.NamespaceInformer
}

// VirtualNode is one remote cluster shown in the master as one Node. It is a
// virtual-kubelet provider (PodLifecycleHandler, PodNotifier, NodeProvider)
// whose pods live in the remote cluster, and it runs its own level-triggered
// controllers: pods out, status back, dependencies, orphans, the Node object
// and its Lease. A Manager creates, runs and stops them; Manager.Node gives
// access to a running one.
type VirtualNode struct {
	cfg      ManagerConfig
	name     string
	masterID string
	ns       NamespaceMapping
	log      *slog.Logger
	metrics  *nodeMetrics
	recorder record.EventRecorder

	master masterSide
	remote remoteSide

	queue workqueue.TypedRateLimitingInterface[workKey]

	specMu  sync.RWMutex
	spec    NodeSpec
	specGen atomic.Uint64 // bumped by setSpec; part of every podState

	// converged skips syncs of pods whose inputs did not change.
	converged *inSync

	healthy     atomic.Bool
	healthMu    sync.Mutex
	health      NodeHealth
	nodeTrigger chan struct{}
	started     time.Time

	// observed holds, per master pod key, when a remote change was first
	// seen and not yet written to the master (status-sync latency).
	observedMu sync.Mutex
	observed   map[workKey]time.Time

	// nsEnsured caches remote namespaces known to exist.
	nsEnsured sync.Map

	podNotify  atomic.Pointer[func(*corev1.Pod)]
	nodeNotify atomic.Pointer[func(*corev1.Node)]

	events *remoteEvents

	factories  []informers.SharedInformerFactory
	unregister []func()

	ready chan struct{}
	done  chan struct{}
	errMu sync.Mutex
	err   error
}

func newVirtualNode(spec NodeSpec, cfg ManagerConfig, shared masterShared, remoteClient kubernetes.Interface, logger *slog.Logger, metrics *nodeMetrics) *VirtualNode {
	v := &VirtualNode{
		cfg:         cfg,
		name:        spec.Name,
		masterID:    cfg.MasterID,
		ns:          spec.namespaceMapping(),
		log:         logger.With("node", spec.Name),
		metrics:     metrics,
		spec:        spec.clone(),
		nodeTrigger: make(chan struct{}, 1),
		observed:    map[workKey]time.Time{},
		converged:   newInSync(),
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
	}
	v.recorder = shared.recorder(spec.Name)
	v.health.Name = spec.Name
	v.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[workKey](cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		workqueue.TypedRateLimitingQueueConfig[workKey]{Name: "atoll-vnode-" + spec.Name},
	)

	// Master: the pods bound to this node, read from the shared pod cache.
	v.master = masterSide{masterShared: shared, pods: podCache{informers: clusterWide(shared.podInformer), node: spec.Name}}

	// Remote: objects this master and node own, plus what the node status
	// and translation need to know, in each namespace of the node's scope.
	v.remote = remoteSide{client: remoteClient, scope: scope(slices.Clone(spec.RemoteNamespaces)),
		pods: podCache{informers: scopedInformer{}}, configMaps: scopedInformer{}, secrets: scopedInformer{}, serviceAccounts: scopedInformer{}}
	owned := ownedSelector(cfg.MasterID, spec.Name)
	var rAll informers.SharedInformerFactory
	for _, ns := range v.remote.scope.informerNamespaces() {
		rOwned := informers.NewSharedInformerFactoryWithOptions(remoteClient, cfg.ResyncPeriod, informers.WithNamespace(ns),
			informers.WithTransform(leanRemotePod),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = owned }))
		rAll = informers.NewSharedInformerFactoryWithOptions(remoteClient, cfg.ResyncPeriod, informers.WithNamespace(ns),
			informers.WithTransform(dropManagedFields))
		v.remote.pods.informers[ns] = rOwned.Core().V1().Pods().Informer()
		v.remote.configMaps[ns] = rOwned.Core().V1().ConfigMaps().Informer()
		v.remote.secrets[ns] = rOwned.Core().V1().Secrets().Informer()
		v.remote.serviceAccounts[ns] = rAll.Core().V1().ServiceAccounts().Informer()
		v.factories = append(v.factories, rOwned, rAll)
	}
	if !v.remote.scope.namespaced() {
		v.remote.nodes = rAll.Core().V1().Nodes()
		v.remote.namespaces = rAll.Core().V1().Namespaces()
	}
	v.events = newRemoteEvents(v)
	return v
}

// Name returns the virtual node's name.
func (v *VirtualNode) Name() string { return v.name }

// currentSpec returns a copy of the node's spec.
func (v *VirtualNode) currentSpec() NodeSpec {
	v.specMu.RLock()
	defer v.specMu.RUnlock()
	return v.spec.clone()
}

// setSpec applies a new spec live: labels, taints, capacity caps and cordon.
// Pods are not touched.
func (v *VirtualNode) setSpec(spec NodeSpec) {
	v.specMu.Lock()
	v.spec = spec.clone()
	v.specGen.Add(1)
	v.specMu.Unlock()
	v.triggerNode()
}

func (v *VirtualNode) triggerNode() {
	select {
	case v.nodeTrigger <- struct{}{}:
	default:
	}
}

// Ready is closed once the caches are in sync and the workers run.
func (v *VirtualNode) Ready() <-chan struct{} { return v.ready }

// Done is closed when the node has stopped (Manager.Remove, Manager.Run ending).
func (v *VirtualNode) Done() <-chan struct{} { return v.done }

// Err returns why the node stopped, once Done is closed (nil: it was told to).
func (v *VirtualNode) Err() error {
	v.errMu.Lock()
	defer v.errMu.Unlock()
	return v.err
}

// ErrorRetention is how long NodeHealth keeps an error that did not recur:
// `atoll status` shows what is wrong now, not what went wrong once.
const ErrorRetention = 5 * time.Minute

// Health returns the node's current health.
func (v *VirtualNode) Health() NodeHealth {
	v.healthMu.Lock()
	defer v.healthMu.Unlock()
	h := v.health
	if !h.LastErrorTime.IsZero() && time.Since(h.LastErrorTime) > ErrorRetention {
		h.LastError, h.LastErrorTime = "", time.Time{}
	}
	return h
}

func (v *VirtualNode) recordError(kind string, err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	v.metrics.errors.WithLabelValues(v.name, kind).Inc()
	v.healthMu.Lock()
	v.health.LastError = fmt.Sprintf("%s: %v", kind, err)
	v.health.LastErrorTime = time.Now()
	v.healthMu.Unlock()
}

// run starts the informers, waits for their caches, then runs the workers,
// the node status loop and the orphan collector until ctx is cancelled.
func (v *VirtualNode) run(ctx context.Context) (retErr error) {
	defer func() {
		v.errMu.Lock()
		v.err = retErr
		v.errMu.Unlock()
		close(v.done)
	}()
	ctx = vklog.WithLogger(ctx, vkslog.FromSlog(v.log))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.started = time.Now()

	if err := v.registerHandlers(); err != nil {
		return err
	}
	synced := v.hasSynced() // instantiates every informer before Start
	for _, f := range v.factories {
		f.Start(ctx.Done())
	}
	defer func() {
		cancel()
		for _, u := range v.unregister {
			u()
		}
		for _, f := range v.factories {
			f.Shutdown()
		}
	}()
	defer v.queue.ShutDown()

	// The node comes up (NotReady until the remote answers) before the
	// remote caches sync, so an unreachable remote still shows as a node.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); v.runNodeStatus(ctx) }()
	go func() { defer wg.Done(); v.events.run(ctx) }()

	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("node %s: wait for caches", v.name)
	}
	if err := v.waitOwnNode(ctx); err != nil {
		return nil // ctx ended
	}
	v.log.Info("caches in sync; starting workers", "workers", v.cfg.Workers)
	// The remote nodes are known now: the Node gets its allocatable and
	// readiness at once rather than at the next ping.
	v.triggerNode()
	v.resyncAll()
	wg.Add(1)
	go func() { defer wg.Done(); v.dispatch(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); v.runOrphanCollector(ctx) }()
	close(v.ready)
	<-ctx.Done()
	v.queue.ShutDown()
	return nil
}

// withTimeout runs one API call with its own deadline.
func withTimeout(ctx context.Context, d time.Duration, call func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return call(cctx)
}

// dropManagedFields is the informers' transform: managed fields are large and
// never read, so caches do not keep them.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil && len(m.GetManagedFields()) > 0 {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// leanRemotePod is the transform of the remote informers of owned objects:
// managed fields go, and a pod is kept as a leanPod with of its spec only
// what the sync reads — the containers' names and images,
// activeDeadlineSeconds, nodeName, the volumes that mount claims (for
// ConditionClaimsCopied; most pods have none). The full spec is the master
// pod's (test/bench/RESULTS.md has what it saves).
func leanRemotePod(obj any) (any, error) {
	obj, err := dropManagedFields(obj)
	p, ok := obj.(*corev1.Pod)
	if !ok || err != nil {
		return obj, err
	}
	return newLeanPod(p, leanSpec{
		containers:     leanContainers(p.Spec.Containers),
		initContainers: leanContainers(p.Spec.InitContainers),
		volumes:        claimVolumes(p.Spec.Volumes),
	}), nil
}

// claimVolumes returns the volumes that mount a PersistentVolumeClaim, nil
// when none does.
func claimVolumes(vs []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range vs {
		if v.PersistentVolumeClaim != nil {
			out = append(out, v)
		}
	}
	return out
}

func leanContainers(cs []corev1.Container) []leanContainer {
	if cs == nil {
		return nil
	}
	out := make([]leanContainer, len(cs))
	for i, c := range cs {
		out[i] = leanContainer{name: c.Name, image: c.Image}
	}
	return out
}

// leanMasterPod is the transform of the shared master pod informer. A pod
// of one of this process's nodes (atollNode) not yet delegated is kept
// whole: its remote copy is made from it. Once delegated (condition
// atoll.dev/Delegated true; written only after the copy exists), and for a
// pod of any other node, the cache keeps a leanPod with of its spec what can
// still change (container images, activeDeadlineSeconds), nodeName, and the
// ConfigMap and Secret references the dependency index reads
// (PodDependencies); everything else of the spec goes, with managed fields.
// A sync that needs the whole spec of a lean pod reads it from the master
// (wholeMasterPod): a pod cached before its node was added is one.
func leanMasterPod(obj any, atollNode func(name string) bool) (any, error) {
	obj, err := dropManagedFields(obj)
	p, ok := obj.(*corev1.Pod)
	if !ok || err != nil || (!hasCondition(p, ConditionDelegated) && atollNode(p.Spec.NodeName)) {
		return obj, err
	}
	return newLeanPod(p, leanSpec{
		containers:       referenceContainers(p.Spec.Containers),
		initContainers:   referenceContainers(p.Spec.InitContainers),
		volumes:          referenceVolumes(p.Spec.Volumes),
		imagePullSecrets: p.Spec.ImagePullSecrets,
	}), nil
}

// referenceContainers keeps of each container its name, image, envFrom and
// the env entries that reference a ConfigMap or Secret.
func referenceContainers(cs []corev1.Container) []leanContainer {
	out := leanContainers(cs)
	for i, c := range cs {
		out[i].envFrom = c.EnvFrom
		for _, e := range c.Env {
			if f := e.ValueFrom; f != nil && (f.ConfigMapKeyRef != nil || f.SecretKeyRef != nil) {
				out[i].env = append(out[i].env, corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{
					ConfigMapKeyRef: f.ConfigMapKeyRef, SecretKeyRef: f.SecretKeyRef,
				}})
			}
		}
	}
	return out
}

// referenceVolumes keeps the volumes that reference a ConfigMap or Secret,
// each with only that reference (the service account token volume, which
// PodDependencies skips, goes).
func referenceVolumes(vs []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range vs {
		src := corev1.VolumeSource{}
		switch {
		case isServiceAccountTokenVolume(v):
			continue
		case v.ConfigMap != nil:
			src.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: v.ConfigMap.LocalObjectReference, Optional: v.ConfigMap.Optional}
		case v.Secret != nil:
			src.Secret = &corev1.SecretVolumeSource{SecretName: v.Secret.SecretName, Optional: v.Secret.Optional}
		case v.Projected != nil:
			var refs []corev1.VolumeProjection
			for _, ps := range v.Projected.Sources {
				switch {
				case ps.ConfigMap != nil:
					refs = append(refs, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ps.ConfigMap.LocalObjectReference, Optional: ps.ConfigMap.Optional}})
				case ps.Secret != nil:
					refs = append(refs, corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: ps.Secret.LocalObjectReference, Optional: ps.Secret.Optional}})
				}
			}
			if refs == nil {
				continue
			}
			src.Projected = &corev1.ProjectedVolumeSource{Sources: refs}
		default:
			continue
		}
		out = append(out, corev1.Volume{Name: v.Name, VolumeSource: src})
	}
	return out
}

func (v *VirtualNode) hasSynced() []cache.InformerSynced {
	synced := []cache.InformerSynced{
		v.master.pods.informers.hasSynced, v.master.nodes.Informer().HasSynced,
		v.remote.pods.informers.hasSynced, v.remote.configMaps.hasSynced,
		v.remote.secrets.hasSynced, v.remote.serviceAccounts.hasSynced,
		v.events.hasSynced,
	}
	if v.remote.nodes != nil {
		synced = append(synced, v.remote.nodes.Informer().HasSynced, v.remote.namespaces.Informer().HasSynced)
	}
	return synced
}

// resyncAll enqueues every master pod and every remote copy: a full
// level-triggered pass over both sides.
func (v *VirtualNode) resyncAll() {
	for _, m := range v.master.pods.metas() {
		v.queue.Add(workKey{kind: keyPod, namespace: m.GetNamespace(), name: m.GetName()})
	}
	for _, m := range v.remote.pods.metas() {
		v.queue.Add(v.remoteKeyOf(keyPod, m))
	}
	v.enqueueRemoteDependencies()
}

// enqueueRemoteDependencies enqueues every ConfigMap and Secret copy: their
// sync updates them from the master or deletes those no pod uses.
func (v *VirtualNode) enqueueRemoteDependencies() {
	for _, obj := range v.remote.configMaps.list() {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			v.queue.Add(v.remoteKeyOf(keyConfigMap, cm))
		}
	}
	for _, obj := range v.remote.secrets.list() {
		if s, ok := obj.(*corev1.Secret); ok {
			v.queue.Add(v.remoteKeyOf(keySecret, s))
		}
	}
}

// remoteKeyOf is the work key of a remote copy: its master object's, or a
// stray key when the copy is outside the namespace mapping.
func (v *VirtualNode) remoteKeyOf(kind keyKind, m metav1.Object) workKey {
	ns, ok := v.ns.Master(m.GetNamespace())
	if !ok {
		return strayKey(kind, m)
	}
	return workKey{kind: kind, namespace: ns, name: m.GetName()}
}

// masterKeyOf returns the master pod key a remote pod stands for: the
// namespace mapping read backwards (a copy carries no note of its master
// namespace: every byte on a copy is work for the remote, per pod and per
// change). False for a copy outside the mapping.
func (v *VirtualNode) masterKeyOf(p metav1.Object) (workKey, bool) {
	k := v.remoteKeyOf(keyPod, p)
	return k, !k.stray
}

func (v *VirtualNode) registerHandlers() error {
	enqueueMasterPod := func(obj any) {
		if m, ok := metaOf(obj); ok {
			v.queue.Add(workKey{kind: keyPod, namespace: m.GetNamespace(), name: m.GetName()})
			// Dependencies of a pod that goes away may now be unused.
			if m.GetDeletionTimestamp() != nil || isTerminal(phaseOf(obj)) {
				v.enqueueDependencies(podOf(obj))
			}
		}
	}
	v.unregister = append(v.unregister, v.master.podEvents.add(v.name, cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueMasterPod,
		UpdateFunc: func(_, n any) { enqueueMasterPod(n) },
		DeleteFunc: func(obj any) {
			if p := podOf(obj); p != nil {
				v.queue.Add(workKey{kind: keyPod, namespace: p.Namespace, name: p.Name})
				v.enqueueDependencies(p)
			}
		},
	}))
	// remotePodChanged enqueues the master pod a remote copy stands for;
	// a real change (not a resync) also starts the status-sync clock.
	remotePodChanged := func(obj any, changed bool) {
		p, ok := metaOf(obj)
		if !ok {
			return
		}
		k, ok := v.masterKeyOf(p)
		if !ok {
			v.queue.Add(k) // a stray copy
			return
		}
		if changed {
			v.observedMu.Lock()
			if _, seen := v.observed[k]; !seen {
				v.observed[k] = time.Now()
			}
			v.observedMu.Unlock()
		}
		v.queue.Add(k)
		if changed {
			v.notifyPod(obj)
		}
	}
	if err := v.remote.pods.informers.addEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { remotePodChanged(obj, true) },
		UpdateFunc: func(o, n any) {
			om, ok1 := metaOf(o)
			nm, ok2 := metaOf(n)
			remotePodChanged(n, !ok1 || !ok2 || om.GetResourceVersion() != nm.GetResourceVersion())
		},
		DeleteFunc: func(obj any) { remotePodChanged(obj, true) },
	}); err != nil {
		return err
	}

	depHandler := func(kind keyKind, remote bool) cache.ResourceEventHandler {
		f := func(obj any) {
			m, err := meta.Accessor(unwrapTombstone(obj))
			if err != nil {
				return
			}
			if remote {
				v.queue.Add(v.remoteKeyOf(kind, m))
				return
			}
			ns := m.GetNamespace()
			v.queue.Add(workKey{kind: kind, namespace: ns, name: m.GetName()})
			// Pods waiting for this object can go on.
			dk := KindConfigMap
			if kind == keySecret {
				dk = KindSecret
			}
			for _, p := range v.master.pods.users(dk, ns, m.GetName()) {
				v.queue.Add(workKey{kind: keyPod, namespace: p.GetNamespace(), name: p.GetName()})
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, n any) { f(n) }, DeleteFunc: f}
	}
	// The master ConfigMap/Secret informers are shared between nodes, so
	// only objects some pod of this node uses are looked at.
	used := func(kind DependencyKind) func(obj any) bool {
		return func(obj any) bool {
			m, err := meta.Accessor(unwrapTombstone(obj))
			if err != nil {
				return false
			}
			return v.dependencyUsed(kind, m.GetNamespace(), m.GetName()) || v.remoteCopyExists(kind, m.GetNamespace(), m.GetName())
		}
	}
	v.unregister = append(v.unregister,
		v.master.configMapEvents.add("", cache.FilteringResourceEventHandler{FilterFunc: used(KindConfigMap), Handler: depHandler(keyConfigMap, false)}),
		v.master.secretEvents.add("", cache.FilteringResourceEventHandler{FilterFunc: used(KindSecret), Handler: depHandler(keySecret, false)}),
		// A deleted Node is registered again at once.
		v.master.nodeEvents.add(v.name, cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { v.triggerNode() }}),
	)
	if err := v.remote.configMaps.addEventHandler(depHandler(keyConfigMap, true)); err != nil {
		return err
	}
	if err := v.remote.secrets.addEventHandler(depHandler(keySecret, true)); err != nil {
		return err
	}
	if v.remote.nodes == nil {
		return nil
	}
	if _, err := v.remote.nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) {},
		UpdateFunc: func(o, n any) { v.remoteNodeChanged(o, n) },
		DeleteFunc: func(any) { v.triggerNode() },
	}); err != nil {
		return err
	}
	return nil
}

// remoteCopyExists reports whether this node has a remote copy of a master object.
func (v *VirtualNode) remoteCopyExists(kind DependencyKind, namespace, name string) bool {
	rns := v.ns.Remote(namespace)
	var ok bool
	switch kind {
	case KindConfigMap:
		_, ok = v.remote.configMaps.get(rns, name)
	case KindSecret:
		_, ok = v.remote.secrets.get(rns, name)
	}
	return ok
}

func (v *VirtualNode) enqueueDependencies(p *corev1.Pod) {
	for _, d := range PodDependencies(p) {
		k := keyConfigMap
		if d.Kind == KindSecret {
			k = keySecret
		}
		v.queue.Add(workKey{kind: k, namespace: p.Namespace, name: d.Name})
	}
}

// dispatch hands each queued key to a goroutine of its own, at most
// cfg.Workers at a time: a busy node syncs Workers pods at once, an idle one
// costs this one goroutine (50 idle nodes would otherwise park 1,600
// workers). It returns once the queue is shut down and the last sync ended.
func (v *VirtualNode) dispatch(ctx context.Context) {
	sem := make(chan struct{}, v.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		k, quit := v.queue.Get()
		if quit {
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			v.process(ctx, k)
		}()
	}
}

// process syncs one key: Forget on success, AddRateLimited on error —
// forever, with the delay capped at RetryMaxDelay.
func (v *VirtualNode) process(ctx context.Context, k workKey) {
	defer v.queue.Done(k)
	var (
		after time.Duration
		err   error
	)
	switch {
	case k.stray:
		if after, err = v.deleteStray(ctx, k); err != nil {
			v.recordError("gc", err)
		}
	case k.kind == keyPod:
		after, err = v.syncPod(ctx, k.namespace, k.name)
	case k.kind == keyConfigMap:
		err = v.syncDependency(ctx, KindConfigMap, k.namespace, k.name)
		if err != nil {
			v.recordError("dependency", err)
		}
	case k.kind == keySecret:
		err = v.syncDependency(ctx, KindSecret, k.namespace, k.name)
		if err != nil {
			v.recordError("dependency", err)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			v.log.Debug("sync failed; will retry", "key", k.String(), "retries", v.queue.NumRequeues(k), "err", err)
		}
		v.queue.AddRateLimited(k)
		return
	}
	v.queue.Forget(k)
	if after > 0 {
		v.queue.AddAfter(k, after)
	}
}
