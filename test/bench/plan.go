package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/atoll-dev/atoll/reconcile"
)

// PlanFleet is one pass of what Atoll does with a revision before it
// touches a cluster: render dir (kustomize when it has a kustomization),
// decode and validate, merge policies, plan against live and write the
// plan's text and summary.
func PlanFleet(ctx context.Context, dir string, live []reconcile.NodeSpec) (*reconcile.Plan, error) {
	_, desired, err := reconcile.Load(ctx, dir, ".")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	p := reconcile.ComputePlan(desired, live)
	_ = p.Text()
	_ = p.Summary()
	return p, nil
}

// MeasurePlan generates a fleet of n clusters in dir, plans it runs times
// against LiveFrom(its own nodes) and returns the median time of one pass.
func MeasurePlan(ctx context.Context, dir string, n int, kustomize bool, runs int) (time.Duration, *reconcile.Plan, error) {
	if err := WriteFleet(dir, n, kustomize); err != nil {
		return 0, nil, err
	}
	_, desired, err := reconcile.Load(ctx, dir, ".")
	if err != nil {
		return 0, nil, fmt.Errorf("load %s: %w", dir, err)
	}
	if len(desired) != n {
		return 0, nil, fmt.Errorf("fleet in %s has %d clusters, want %d", dir, len(desired), n)
	}
	live := LiveFrom(desired)
	times := make([]time.Duration, 0, runs)
	var plan *reconcile.Plan
	for range max(runs, 1) {
		start := time.Now()
		if plan, err = PlanFleet(ctx, dir, live); err != nil {
			return 0, nil, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], plan, nil
}
