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
package reconcile
