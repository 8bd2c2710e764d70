package vnode

import (
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// leanPod is what a pod cache keeps of a pod it holds lean (leanRemotePod,
// leanMasterPod): its metadata, status and the few spec fields the sync
// reads. A corev1.Pod is 1.2 KB of struct before any content, a corev1.Container
// 400 bytes, almost all of it fields a lean pod leaves empty; with 10,000
// pods on a node, each cached twice, that is 25 MB of zeroes.
type leanPod struct {
	metav1.ObjectMeta // so that cache key functions read it as a pod
	spec              leanSpec
	status            corev1.PodStatus
}

type leanSpec struct {
	nodeName              string
	activeDeadlineSeconds *int64
	containers            []leanContainer
	initContainers        []leanContainer
	volumes               []corev1.Volume
	imagePullSecrets      []corev1.LocalObjectReference
}

type leanContainer struct {
	name, image string
	envFrom     []corev1.EnvFromSource
	env         []corev1.EnvVar
}

func (cs leanContainer) container() corev1.Container {
	return corev1.Container{Name: cs.name, Image: cs.image, EnvFrom: cs.envFrom, Env: cs.env}
}

func podContainers(cs []leanContainer) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = c.container()
	}
	return out
}

// newLeanPod returns p as a leanPod with spec, to which it adds the fields
// every lean pod keeps: nodeName and activeDeadlineSeconds.
func newLeanPod(p *corev1.Pod, spec leanSpec) *leanPod {
	spec.nodeName, spec.activeDeadlineSeconds = p.Spec.NodeName, p.Spec.ActiveDeadlineSeconds
	return &leanPod{ObjectMeta: p.ObjectMeta, spec: spec, status: p.Status}
}

// pod returns the cached pod as a corev1.Pod of its own; its maps and
// slices are the cache's, not to be changed.
func (l *leanPod) pod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: l.ObjectMeta,
		Spec: corev1.PodSpec{
			NodeName:              l.spec.nodeName,
			ActiveDeadlineSeconds: l.spec.activeDeadlineSeconds,
			Containers:            podContainers(l.spec.containers),
			InitContainers:        podContainers(l.spec.initContainers),
			Volumes:               l.spec.volumes,
			ImagePullSecrets:      l.spec.imagePullSecrets,
		},
		Status: l.status,
	}
}

// podOf returns the pod a pod cache entry, event object or tombstone
// holds: the cached *corev1.Pod itself, or a *corev1.Pod built from a
// *leanPod. Nil for anything else.
func podOf(obj any) *corev1.Pod {
	switch p := unwrapTombstone(obj).(type) {
	case *corev1.Pod:
		return p
	case *leanPod:
		return p.pod()
	}
	return nil
}

// podCache reads pod informers whose stores hold *corev1.Pod and *leanPod
// entries (a client-go lister would fail on the latter). With node set it
// is one node's view of the shared master pod informer (masterShared): it
// sees only the pods bound to that node.
type podCache struct {
	informers scopedInformer
	node      string
}

// entry returns the cache entry of the pod namespace/name: a *corev1.Pod or
// a *leanPod.
func (c podCache) entry(namespace, name string) (any, bool) {
	obj, ok := c.informers.get(namespace, name)
	if !ok || (c.node != "" && nodeOf(obj) != c.node) {
		return nil, false
	}
	return obj, true
}

// get returns the cached pod namespace/name, or a NotFound error.
func (c podCache) get(namespace, name string) (*corev1.Pod, error) {
	obj, _ := c.entry(namespace, name)
	if p := podOf(obj); p != nil {
		return p, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
}

// meta returns the metadata of the cached pod namespace/name.
func (c podCache) meta(namespace, name string) (metav1.Object, bool) {
	obj, ok := c.entry(namespace, name)
	if !ok {
		return nil, false
	}
	return metaOf(obj)
}

// entries returns every cache entry (of the node, if the cache is scoped).
func (c podCache) entries() []any {
	if c.node == "" {
		return c.informers.list()
	}
	objs, err := c.informers.of(metav1.NamespaceAll).GetIndexer().ByIndex(indexNode, c.node)
	if err != nil {
		return nil
	}
	return objs
}

// metas returns the metadata of every cached pod (no pod is built).
func (c podCache) metas() []metav1.Object { return metasOf(c.entries()) }

// users returns the metadata of the cached pods of the node that use a
// ConfigMap or Secret (a node's view of the master pod cache only).
func (c podCache) users(kind DependencyKind, namespace, name string) []metav1.Object {
	objs, err := c.informers.of(metav1.NamespaceAll).GetIndexer().ByIndex(indexDependencies, nodeDepKey(c.node, kind, namespace, name))
	if err != nil {
		return nil
	}
	return metasOf(objs)
}

// list returns every cached pod.
func (c podCache) list() []*corev1.Pod {
	objs := c.entries()
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p := podOf(o); p != nil {
			out = append(out, p)
		}
	}
	return out
}

func metasOf(objs []any) []metav1.Object {
	out := make([]metav1.Object, 0, len(objs))
	for _, o := range objs {
		if m, ok := metaOf(o); ok {
			out = append(out, m)
		}
	}
	return out
}

// entryFacts returns what handlers and indexes read of a pod cache entry,
// event object or tombstone — its metadata, node and phase — without
// building a pod; ok is false for anything else.
func entryFacts(obj any) (m metav1.Object, node string, phase corev1.PodPhase, ok bool) {
	switch p := unwrapTombstone(obj).(type) {
	case *corev1.Pod:
		return p, p.Spec.NodeName, p.Status.Phase, true
	case *leanPod:
		return p, p.spec.nodeName, p.status.Phase, true
	}
	return nil, "", "", false
}

// metaOf returns the metadata of a pod cache entry, event object or tombstone.
func metaOf(obj any) (metav1.Object, bool) {
	m, _, _, ok := entryFacts(obj)
	return m, ok
}

// nodeOf returns the node a pod cache entry, event object or tombstone is
// bound to.
func nodeOf(obj any) string {
	_, node, _, _ := entryFacts(obj)
	return node
}

// phaseOf returns the phase of a pod cache entry, event object or tombstone.
func phaseOf(obj any) corev1.PodPhase {
	_, _, phase, _ := entryFacts(obj)
	return phase
}

// unwrapTombstone returns the last known object a delete event's tombstone
// holds, or obj itself.
func unwrapTombstone(obj any) any {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tomb.Obj
	}
	return obj
}
