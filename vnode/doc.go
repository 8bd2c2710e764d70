// Package vnode shows remote Kubernetes clusters in a master cluster as
// virtual nodes, one Node per remote cluster.
//
// Pods the master's scheduler binds to a virtual node are created in the
// remote cluster (same name; namespace Same or Prefix), with the ConfigMaps
// and Secrets they reference copied first; their status is mirrored back.
// Every object Atoll writes in a remote carries LabelMaster (this master's
// identity), LabelNode and LabelOriginUID; nothing without them is changed.
//
// # Usage
//
//	m, err := vnode.NewManager(vnode.ManagerConfig{Master: masterConfig, Registerer: prometheus.DefaultRegisterer})
//	if err != nil { ... }
//	go m.Run(ctx) // blocks until ctx is cancelled
//	err = m.Add(vnode.NodeSpec{
//		Name:   "cern-001",
//		Labels: map[string]string{"topology.kubernetes.io/region": "geneva"},
//		Taints: []corev1.Taint{{Key: "virtual-kubelet.io/provider", Value: "atoll", Effect: corev1.TaintEffectNoSchedule}},
//		Remote: remoteConfig,
//	})
//	err = m.Update(spec)        // labels, taints, capacity caps, cordon: live
//	for _, h := range m.Health() { fmt.Println(h.Name, h.Ready, h.DelegatedPods, h.LastError) }
//	err = m.Remove(ctx, "cern-001") // after the caller drained it; the remote is cleaned up in the background
//
// # How it works
//
// A VirtualNode is a virtual-kubelet provider (it implements
// node.PodLifecycleHandler, node.PodNotifier and node.NodeProvider), but
// Atoll runs its own controllers rather than virtual-kubelet's PodController
// and NodeController, because their behaviour contradicts what Atoll
// promises: the PodController drops a status update after 20 retries, marks
// a RestartPolicy=Never pod Failed when one create is refused, force-deletes
// the master pod after the grace period whether or not the remote pod is
// gone, and collects orphans only at start; the NodeController never
// updates taints or unschedulable and stops writing status (instead of
// writing NotReady) when the remote is down.
//
// Per virtual node there is one rate-limited work queue (client-go
// workqueue, exponential backoff capped at RetryMaxDelay, retried forever)
// fed by shared informers on both sides: master pods bound to any node,
// ConfigMaps, Secrets and virtual Nodes (shared by all nodes of a Manager,
// each with one handler that fans events out to the nodes, pods and Nodes
// only to the node they belong to: shared.go), and in the remote the pods,
// ConfigMaps and Secrets this node owns. Handlers only enqueue keys; each sync is level-based and looks at
// both caches:
//
//   - pods.go: create (idempotent; adopts an existing copy by origin UID,
//     reports NameConflict for a foreign pod), update, deletion (remote first,
//     master pod removed once the remote is gone or unreachable past the grace
//     period), RemoteDeleted.
//   - podstatus.go: the master pod's status from its remote copy.
//   - deps.go: ConfigMaps and Secrets copied, kept in sync, collected.
//   - orphans.go: every GCInterval, remote objects whose origin is gone.
//   - cleanup.go: once a node is removed, what it made in its remote: its
//     copies, and the namespaces it created that hold nothing else.
//   - events.go: remote Events about delegated pods re-emitted on master pods.
//   - node.go: the Node (labels, taints, cordon, allocatable, Ready) and Lease.
//   - translate.go: TranslatePod, a pure function from master to remote pod.
//   - metrics.go: Prometheus metrics.
//   - insync.go: the last converged state of each pod, so that a sync of
//     the same state again is skipped.
//
// Informers resync every ResyncPeriod, so both sides are fully compared at
// least that often; a restart re-lists both sides. Nothing is created or
// deleted in a remote that does not answer its health check.
//
// # Footprint
//
// What one virtual node costs is measured by `make bench`
// (test/bench/RESULTS.md). A pod's sync depends only on the two objects'
// resource versions and the node spec's generation; once it converged, that
// state is remembered, so a resync of 10,000 unchanged pods is 10,000 map
// look-ups rather than translations and deep comparisons. The remote pod
// cache keeps of the spec only what the sync reads (the master pod has the
// rest; changes go to the remote as patches); the master pod cache keeps a
// delegated pod without the spec its copy was made from (what can still
// change and the dependency references stay). Remote Events are forwarded
// as they are watched and not cached. Keys are synced by goroutines started per key, at
// most Workers at a time, so an idle node parks one goroutine, not Workers.
// Clients ask for no gzip: each watch would keep a decompressor for its life.
package vnode
