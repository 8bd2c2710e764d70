package bench

import (
	"context"
	"testing"

	"github.com/atoll-dev/atoll/reconcile"
)

// TestMeasurePlan checks the plan figure measures what it says: a fleet of
// n clusters, planned against LiveFrom, gives the adds, updates and removals
// LiveFrom built in.
func TestMeasurePlan(t *testing.T) {
	for _, kustomize := range []bool{false, true} {
		d, plan, err := MeasurePlan(context.Background(), t.TempDir(), 40, kustomize, 3)
		if err != nil {
			t.Fatal(err)
		}
		if d <= 0 {
			t.Errorf("kustomize=%v: median %v", kustomize, d)
		}
		add, update, remove := plan.Counts()
		if add != 4 || update != 12 || remove != 2 || plan.DesiredCount != 40 {
			t.Errorf("kustomize=%v: plan adds %d, updates %d, removes %d of %d; want 4, 12, 2 of 40", kustomize, add, update, remove, plan.DesiredCount)
		}
	}
}

func benchmarkPlan(b *testing.B, kustomize bool) {
	dir := b.TempDir()
	if _, _, err := MeasurePlan(context.Background(), dir, 1000, kustomize, 1); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_, desired, err := reconcile.Load(ctx, dir, ".")
	if err != nil {
		b.Fatal(err)
	}
	live := LiveFrom(desired)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PlanFleet(ctx, dir, live); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan1000 renders (plain YAML, one file per cluster), decodes,
// validates and merges 1,000 clusters with 3 policies, plans against a live
// state differing in 40% of the nodes and renders the plan. Target: 1 s.
func BenchmarkPlan1000(b *testing.B) { benchmarkPlan(b, false) }

// BenchmarkPlan1000Kustomize is BenchmarkPlan1000 through a kustomization
// listing the 1,003 files, as `make bench` measures it.
func BenchmarkPlan1000Kustomize(b *testing.B) { benchmarkPlan(b, true) }
