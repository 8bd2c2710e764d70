package vnode

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// runOrphanCollector looks, every GCInterval, for remote pods, ConfigMaps and
// Secrets of this node whose master origin is gone, and enqueues them; the
// sync then deletes them after a live check of the master. Nothing is
// deleted while the remote is unreachable.
func (v *VirtualNode) runOrphanCollector(ctx context.Context) {
	t := time.NewTicker(v.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !v.healthy.Load() {
			continue
		}
		v.collectOrphans()
	}
}

// collectOrphans enqueues every remote object whose master origin is not in
// the master cache (pods: by origin UID, or outside the namespace mapping;
// ConfigMaps and Secrets: all, as their sync deletes those no pod uses).
func (v *VirtualNode) collectOrphans() int {
	n := 0
	for _, p := range v.remote.pods.metas() {
		k, ok := v.masterKeyOf(p)
		if ok {
			if m, found := v.master.pods.meta(k.namespace, k.name); found && string(m.GetUID()) == p.GetLabels()[LabelOriginUID] {
				continue
			}
		}
		n++
		v.queue.Add(k)
	}
	v.enqueueRemoteDependencies()
	return n
}

// deleteStray deletes a remote copy this node owns in a namespace its
// namespace mapping does not reach, which an earlier mapping made: a changed
// mapping restarts the node, and the pods' copies are made again in the
// namespaces it maps to. A pod's old copy goes only once its new copy
// exists (or its master pod is done or gone); until then the key comes back
// after strayRecheck. The copy is read from the cache, the delete is
// conditional on its UID, and nothing is deleted while the remote is
// unreachable.
func (v *VirtualNode) deleteStray(ctx context.Context, k workKey) (time.Duration, error) {
	var (
		obj  metav1.Object
		kind DependencyKind
	)
	switch k.kind {
	case keyPod:
		obj, _ = v.remote.pods.meta(k.namespace, k.name)
	case keyConfigMap:
		kind = KindConfigMap
		if cm, ok := getAs[*corev1.ConfigMap](v.remote.configMaps, k.namespace, k.name); ok {
			obj = cm
		}
	case keySecret:
		kind = KindSecret
		if s, ok := getAs[*corev1.Secret](v.remote.secrets, k.namespace, k.name); ok {
			obj = s
		}
	}
	if obj == nil || !ownedBy(obj, v.masterID, v.name) || obj.GetDeletionTimestamp() != nil {
		return 0, nil
	}
	if k.kind == keyPod && !v.strayReplaced(obj) {
		return strayRecheck, nil
	}
	if !v.healthy.Load() {
		return 0, errRemoteUnavailable
	}
	var err error
	if k.kind == keyPod {
		err = v.deletePodCopy(ctx, obj)
	} else {
		err = v.deleteRemoteObject(ctx, kind, obj)
	}
	if err != nil {
		return 0, err
	}
	v.log.Info("deleted remote copy outside the namespace mapping", "key", k.String())
	return 0, nil
}

// strayRecheck is how often a pod's old copy looks for its new one.
const strayRecheck = time.Second

// strayCopyOf returns the copy of the master pod uid that an earlier
// namespace mapping made, if the remote holds one. It walks the node's
// remote pods: it is asked only for a delegated pod without a copy where the
// mapping puts it, which is rare but for the restart after a mapping change.
func (v *VirtualNode) strayCopyOf(uid types.UID) metav1.Object {
	for _, m := range v.remote.pods.metas() {
		if m.GetLabels()[LabelOriginUID] != string(uid) {
			continue
		}
		if _, ok := v.ns.Master(m.GetNamespace()); !ok {
			return m
		}
	}
	return nil
}

// strayReplaced reports whether a pod's copy outside the namespace mapping
// can go: its master pod (of this node, by origin UID) is gone, done or
// being deleted, or has its copy where the mapping puts it.
func (v *VirtualNode) strayReplaced(stray metav1.Object) bool {
	uid := stray.GetLabels()[LabelOriginUID]
	for _, e := range v.master.pods.entries() {
		m, _, phase, ok := entryFacts(e)
		if !ok || string(m.GetUID()) != uid {
			continue
		}
		if m.GetDeletionTimestamp() != nil || isTerminal(phase) {
			return true
		}
		c, ok := v.remote.pods.meta(v.ns.Remote(m.GetNamespace()), m.GetName())
		return ok && c.GetLabels()[LabelOriginUID] == uid
	}
	return true
}
