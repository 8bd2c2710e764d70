package vnode

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// scopedInformer is one kind's informers in a cluster: a single
// cluster-wide one (key metav1.NamespaceAll), or, for a virtual node
// confined to some remote namespaces (NodeSpec.RemoteNamespaces), one per
// namespace, as an identity with Roles in those namespaces only cannot
// list or watch across them.
type scopedInformer map[string]cache.SharedIndexInformer

// clusterWide is the scopedInformer of one cluster-wide informer.
func clusterWide(inf cache.SharedIndexInformer) scopedInformer {
	return scopedInformer{metav1.NamespaceAll: inf}
}

// of returns the informer that holds namespace's objects, nil if none does.
func (s scopedInformer) of(namespace string) cache.SharedIndexInformer {
	if inf, ok := s[namespace]; ok {
		return inf
	}
	return s[metav1.NamespaceAll]
}

// get returns the cached object namespace/name.
func (s scopedInformer) get(namespace, name string) (any, bool) {
	inf := s.of(namespace)
	if inf == nil {
		return nil, false
	}
	obj, exists, err := inf.GetIndexer().GetByKey(namespace + "/" + name)
	return obj, err == nil && exists
}

// list returns every cached object.
func (s scopedInformer) list() []any {
	var out []any
	for _, inf := range s {
		out = append(out, inf.GetStore().List()...)
	}
	return out
}

// len returns the number of cached objects.
func (s scopedInformer) len() int {
	n := 0
	for _, inf := range s {
		n += len(inf.GetStore().ListKeys())
	}
	return n
}

func (s scopedInformer) hasSynced() bool {
	for _, inf := range s {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

func (s scopedInformer) addEventHandler(h cache.ResourceEventHandler) error {
	for _, inf := range s {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	return nil
}

// getAs returns the cached object namespace/name as a T.
func getAs[T any](s scopedInformer, namespace, name string) (T, bool) {
	obj, ok := s.get(namespace, name)
	t, isT := obj.(T)
	return t, ok && isT
}

// scope is the remote namespaces a virtual node works in: every one (nil;
// the cluster-wide identity of deploy/remote), or those listed (the
// namespaced identity of deploy/remote-namespaced).
type scope []string

// namespaced reports whether the node is confined to listed namespaces.
func (s scope) namespaced() bool { return len(s) > 0 }

// serves reports whether the node may work in the remote namespace.
func (s scope) serves(namespace string) bool {
	return !s.namespaced() || slices.Contains(s, namespace)
}

// informerNamespaces are the namespaces to run informers in: each listed
// one, or metav1.NamespaceAll.
func (s scope) informerNamespaces() []string {
	if s.namespaced() {
		return s
	}
	return []string{metav1.NamespaceAll}
}
