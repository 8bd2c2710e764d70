package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/atoll-dev/atoll/reconcile"
)

// fleetPolicies are the three PlacementPolicies of a generated fleet: one
// picks a third of the clusters, one two regions, one every cluster.
var fleetPolicies = map[string]string{
	"policies/gpu.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: gpu}
spec:
  clusterSelector: {matchLabels: {gpu: "true"}}
  node:
    labels: {accelerator: nvidia}
    taints: [{key: gpu, value: "true", effect: NoSchedule}]
    capacity: {cpu: "8", pods: "110"}
  tolerateIn:
    namespaceSelector: {matchLabels: {team: ml}}
`,
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

// WriteFleet writes a fleet of n Clusters, one file each under
// dir/clusters, and the three fleetPolicies under dir/policies. With
// kustomize it adds a kustomization.yaml listing every file, as a real
// fleet repository would.
func WriteFleet(dir string, n int, kustomize bool) error {
	files := map[string]string{}
	for k, v := range fleetPolicies {
		files[k] = v
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
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// LiveFrom derives a live state that differs from desired the way a fleet
// in flux does: a tenth of the nodes missing (to add), a tenth each with
// other labels, no taints, or other caps and cordoned (to update), and
// extra nodes (to remove), a twentieth of the count.
func LiveFrom(desired []reconcile.NodeSpec) []reconcile.NodeSpec {
	live := make([]reconcile.NodeSpec, 0, len(desired))
	for i, n := range desired {
		switch i % 10 {
		case 0:
			continue
		case 1:
			n.Labels = map[string]string{"old": "label"}
		case 2:
			n.Taints = nil
		case 3:
			cpu := resource.MustParse("100")
			n.Capacity = reconcile.Capacity{CPU: &cpu}
			n.Cordon = true
		}
		live = append(live, n)
	}
	for i := range len(desired) / 20 {
		live = append(live, reconcile.NodeSpec{Name: fmt.Sprintf("gone-%04d", i)})
	}
	return live
}
