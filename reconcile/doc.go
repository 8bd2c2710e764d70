// Package reconcile turns the declarations of a fleet repository
// (atoll.dev/v1alpha1 Cluster and PlacementPolicy) into desired virtual
// nodes, and compares them with the live ones.
//
// This half of the package is pure: it reads files and computes, and never
// talks to a cluster. The pipeline is
//
//	Render (kustomize or plain YAML, confined to the repository root, limited)
//	  -> Decode (strict, defaults, validation; errors name file:line)
//	  -> DesiredNodes (clusters merged with the policies that select them)
//	  -> ComputePlan (desired x live -> ordered changes)
//	  -> CheckBreaker (refuse mass removal unless the commit allows it)
//
// Usage:
//
//	_, desired, err := reconcile.Load(ctx, repoDir, "overlays/prod", reconcile.WithMode(reconcile.ModeGit))
//	if err != nil {
//		return err // an ErrorList prints one "file:line: field: message" per line
//	}
//	plan := reconcile.ComputePlan(desired, live)
//	if err := reconcile.CheckBreaker(plan, snapshot.Message, 0); err != nil {
//		return err // *BreakerError
//	}
//	fmt.Print(plan.Text())
//	status := plan.Summary() // "+1 node cern-003 · taint changed on gke-001"
//
// Decisions (see also examples/fleet/README.md):
//   - A label key (or a taint key and effect) set to different values for
//     one cluster by the Cluster and a policy, or by two policies, is an
//     error; identical values merge. Capacity caps merge to the smallest.
//   - A relative credentials path is relative to the fleet path.
//   - Documents of any other kind are errors: a fleet holds only Clusters
//     and PlacementPolicies.
//   - With kustomize, line numbers come from each object's source file
//     (kustomize's origin annotation); fields that only a patch sets are
//     reported at the nearest line present in the source.
//
// # Apply
//
// The other half runs the fleet: a Reconciler takes revisions from a
// Source, applies them through a NodeSet and reports through a
// StatusReporter, three small interfaces cmd implements (gitsource for the
// source, vnode.Manager for the nodes, git-host writers for statuses):
//
//	r, err := reconcile.New(reconcile.Config{
//		Source: src, Nodes: nodes, Master: client, Namespace: "atoll-system",
//		Path: "overlays/prod", Reporter: statuses, Registerer: prometheus.DefaultRegisterer,
//	})
//	go r.Run(ctx) // one pass per change signal, retries and resyncs until ctx ends
//
// One pass: fetch; a new revision is reported pending, then loaded (an
// invalid one changes nothing and is reported as failure naming file:line;
// the previous revision stays applied); plan the desired nodes against the
// live ones; check the breaker; apply additions, updates, then removals
// (cordon, evict through the Eviction API until empty or DrainTimeout,
// remove); report success once every declared node is Ready
// ("2 nodes ready · +1 added"), or failure with the reason.
//
// Decisions:
//   - Live is what this process applied (kept in memory, credentials
//     included, since the NodeSet's own view lacks them) plus every master
//     Node labelled atoll.dev/cluster it does not know, so a restarted or
//     newly elected process removes nodes left behind and adopts the rest.
//     A left-behind node to remove has no controller to finish its pods: it
//     is cordoned, evicted once and deleted; the pod garbage collector does
//     the rest.
//   - A cluster that fails (missing Secret, unreadable kubeconfig) is
//     reported and retried every RetryInterval; the others proceed. The
//     revision is failure until it heals, then success.
//   - Nodes not Ready within ReadyTimeout (2m) turn the revision into a
//     failure; it keeps being watched and becomes success when they are.
//   - A pending revision overtaken by a newer one, and commits skipped
//     over (Snapshot.Superseded), get state "success", "superseded by
//     ...": their changes are applied with the newer one, whose own status
//     says how that went.
//   - A render error is the revision's (failure, not retried) unless it
//     ran out of time.
//   - The last outcome per cluster is kept in the ConfigMap atoll-status
//     in Atoll's namespace (ReadStatus; `atoll status`), and each revision
//     outcome is an Event on it.
//   - A Secret whose content changes under an unchanged secretRef, or a
//     kubeconfig file (watch mode's path) that changes, is picked up by the
//     NodeSet of `atoll run` and `atoll watch` (cmd/atoll, managerNodes):
//     the node restarts with the new kubeconfig.
package reconcile
