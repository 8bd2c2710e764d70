package vnode

import (
	"context"
	"time"
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
// the master cache (pods: by origin UID; ConfigMaps and Secrets: all, as
// their sync deletes those no pod uses).
func (v *VirtualNode) collectOrphans() int {
	n := 0
	for _, p := range v.remote.pods.metas() {
		k, ok := v.masterKeyOf(p)
		if !ok {
			continue
		}
		if m, ok := v.master.pods.meta(k.namespace, k.name); ok && string(m.GetUID()) == p.GetLabels()[LabelOriginUID] {
			continue
		}
		n++
		v.queue.Add(k)
	}
	v.enqueueRemoteDependencies()
	return n
}
