package reconcile

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// writeFleet writes n clusters, one file each, and three policies under
// dir/clusters and dir/policies; with kustomize it adds a kustomization.
func writeFleet(b *testing.B, dir string, n int, kustomize bool) {
	b.Helper()
	files := map[string]string{
		"policies/gpu.yaml": policyGPU,
		"policies/eu.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: eu}
spec:
  clusterSelector:
    matchExpressions: [{key: region, operator: In, values: [eu-west, eu-north]}]
  node:
    labels: {topology.kubernetes.io/region: eu}
    capacity: {memory: 4Ti}
`,
		"policies/all.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: all}
spec:
  clusterSelector: {}
  node:
    taints: [{key: virtual-kubelet.io/provider, value: atoll, effect: NoSchedule}]
`,
	}
	var resources strings.Builder
	resources.WriteString("resources:\n  - policies/gpu.yaml\n  - policies/eu.yaml\n  - policies/all.yaml\n")
	regions := []string{"eu-west", "eu-north", "us-east", "ap-south"}
	for i := range n {
		name := fmt.Sprintf("cluster-%04d", i)
		files["clusters/"+name+".yaml"] = fmt.Sprintf(`apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: %s
  labels: {region: %s, gpu: "%t"}
spec:
  credentials:
    secretRef: {name: %s-kubeconfig, key: kubeconfig}
  node:
    labels: {example.com/index: "%d", example.com/tier: gold}
    taints: [{key: example.com/dedicated, value: team-%d, effect: PreferNoSchedule}]
    capacity: {cpu: "400", memory: 2Ti, pods: "5000"}
  namespaces: {mode: Prefix, prefix: hub-}
`, name, regions[i%len(regions)], i%3 == 0, name, i, i%7)
		fmt.Fprintf(&resources, "  - clusters/%s.yaml\n", name)
	}
	if kustomize {
		files["kustomization.yaml"] = resources.String()
	}
	writeFiles(b, dir, files)
}

// liveFrom derives a live state from desired: some nodes gone, some extra,
// some with other labels, taints or caps.
func liveFrom(desired []NodeSpec) []NodeSpec {
	live := make([]NodeSpec, 0, len(desired))
	for i, n := range desired {
		switch i % 10 {
		case 0:
			continue // to add
		case 1:
			n.Labels = map[string]string{"old": "label"}
		case 2:
			n.Taints = nil
		case 3:
			n.Capacity = Capacity{CPU: q("100")}
			n.Cordon = true
		}
		live = append(live, n)
	}
	for i := range len(desired) / 20 {
		live = append(live, node(fmt.Sprintf("gone-%04d", i)))
	}
	return live
}

func benchmarkPlan(b *testing.B, kustomize bool) {
	dir := b.TempDir()
	writeFleet(b, dir, 1000, kustomize)
	ctx := context.Background()
	_, desired, err := Load(ctx, dir, ".")
	if err != nil {
		b.Fatal(err)
	}
	if len(desired) != 1000 {
		b.Fatalf("%d nodes, want 1000", len(desired))
	}
	live := liveFrom(desired)
	b.ReportAllocs()
	for b.Loop() {
		_, desired, err := Load(ctx, dir, ".")
		if err != nil {
			b.Fatal(err)
		}
		p := ComputePlan(desired, live)
		if p.Empty() {
			b.Fatal("empty plan")
		}
		_ = p.Text()
		_ = p.Summary()
	}
}

// BenchmarkPlan1000 renders (plain YAML, one file per cluster), decodes,
// validates and merges 1,000 clusters with 3 policies, plans against a
// live state differing in 40% of the nodes and renders the plan. Target:
// well under 1 s per operation.
func BenchmarkPlan1000(b *testing.B) { benchmarkPlan(b, false) }

// BenchmarkPlan1000Kustomize is BenchmarkPlan1000 through a kustomization
// listing the 1,003 files. About half of its time is kustomize's own
// resource accumulation, which is quadratic in the number of resources
// (resWrangler.Append checks every new resource against all earlier ones).
func BenchmarkPlan1000Kustomize(b *testing.B) { benchmarkPlan(b, true) }
