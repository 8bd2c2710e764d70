package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

func TestDesiredNodes(t *testing.T) {
	clusterB := `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: b
  labels: {region: us}
spec:
  credentials:
    path: kubeconfigs/b.yaml
  node:
    labels: {accelerator: nvidia}
    taints: [{key: gpu, value: "true", effect: NoSchedule}, {key: b-only, effect: PreferNoSchedule}]
    capacity: {cpu: "4", memory: 8Gi}
  namespaces: {mode: Prefix, prefix: hub-}
  cordon: true
`
	regionPolicy := `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: regions}
spec:
  clusterSelector:
    matchExpressions: [{key: region, operator: In, values: [eu, us]}]
  node:
    labels: {managed: "yes"}
    capacity: {cpu: "2", pods: "50"}
`
	noGPU := `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: no-gpu}
spec:
  clusterSelector:
    matchExpressions: [{key: gpu, operator: DoesNotExist}]
  node:
    labels: {plain: "true"}
`
	type want struct {
		labels      map[string]string
		taints      []string
		capacity    string
		cordon      bool
		namespaces  string
		credentials string
		tolerateIn  []string
		policies    []string
	}
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]want
	}{
		{
			name:  "cluster alone: declared values and defaults",
			files: map[string]string{"a.yaml": clusterA},
			want: map[string]want{"a": {
				taints:   []string{"virtual-kubelet.io/provider=atoll:NoSchedule"},
				capacity: "none", namespaces: "Same", credentials: "secret a-kubeconfig key kubeconfig",
			}},
		},
		{
			name: "providerTaint: false leaves the provider taint off; a declared one of its key stays as declared",
			files: map[string]string{
				"a.yaml": clusterA + "  providerTaint: false\n",
				"b.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: b}\nspec:\n  credentials: {path: b.yaml}\n  node:\n    taints: [{key: virtual-kubelet.io/provider, value: other, effect: NoSchedule}]\n",
			},
			want: map[string]want{
				"a": {capacity: "none", namespaces: "Same", credentials: "secret a-kubeconfig key kubeconfig"},
				"b": {taints: []string{"virtual-kubelet.io/provider=other:NoSchedule"}, capacity: "none", namespaces: "Same", credentials: "path b.yaml"},
			},
		},
		{
			name:  "policies merge: same values dedupe, caps take the smallest",
			files: map[string]string{"a.yaml": clusterA, "b.yaml": clusterB, "gpu.yaml": policyGPU, "regions.yaml": regionPolicy, "nogpu.yaml": noGPU},
			want: map[string]want{
				"a": {
					labels:      map[string]string{"accelerator": "nvidia", "managed": "yes"},
					taints:      []string{"gpu=true:NoSchedule", "virtual-kubelet.io/provider=atoll:NoSchedule"},
					capacity:    "cpu=2, pods=50",
					namespaces:  "Same",
					credentials: "secret a-kubeconfig key kubeconfig",
					tolerateIn:  []string{"namespaces team=ml tolerate gpu=true:NoSchedule,virtual-kubelet.io/provider=atoll:NoSchedule"},
					policies:    []string{"gpu", "regions"},
				},
				"b": {
					labels:      map[string]string{"accelerator": "nvidia", "managed": "yes", "plain": "true"},
					taints:      []string{"b-only:PreferNoSchedule", "gpu=true:NoSchedule", "virtual-kubelet.io/provider=atoll:NoSchedule"},
					capacity:    "cpu=2, memory=8Gi, pods=50",
					cordon:      true,
					namespaces:  "Prefix hub-",
					credentials: "path kubeconfigs/b.yaml",
					policies:    []string{"no-gpu", "regions"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := loadDir(t, tt.files, ModeWatch)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			if !slices.Equal(names, slices.Sorted(maps.Keys(tt.want))) {
				t.Fatalf("nodes %v, want %v", names, slices.Sorted(maps.Keys(tt.want)))
			}
			for _, n := range nodes {
				w := tt.want[n.Name]
				var taints []string
				for _, tn := range n.Taints {
					taints = append(taints, tn.String())
				}
				var tol []string
				for _, r := range n.TolerateIn {
					tol = append(tol, r.String())
				}
				got := fmt.Sprintf("%v|%v|%s|%v|%s|%s|%v|%v", n.Labels, taints, n.Capacity, n.Cordon, n.Namespaces, n.Credentials, tol, n.Policies)
				exp := fmt.Sprintf("%v|%v|%s|%v|%s|%s|%v|%v", w.labels, w.taints, w.capacity, w.cordon, w.namespaces, w.credentials, w.tolerateIn, w.policies)
				if got != exp {
					t.Errorf("node %s:\n got %s\nwant %s", n.Name, got, exp)
				}
			}
		})
	}
}

func TestCredentialsResolve(t *testing.T) {
	tests := []struct {
		name string
		c    Credentials
		want string
	}{
		{"relative to the fleet path", Credentials{Path: "../k/a.kubeconfig"}, "/fleet/k/a.kubeconfig"},
		{"absolute stays", Credentials{Path: "/etc/a.kubeconfig"}, "/etc/a.kubeconfig"},
		{"secret has no path", Credentials{SecretRef: &SecretKeyRef{Name: "s", Key: "k"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Resolve("/fleet/overlay"); got != tt.want {
				t.Errorf("Resolve = %q, want %q", got, tt.want)
			}
		})
	}
}

// Declarations built in code (no source file) work too.
func TestDesiredNodesFromCode(t *testing.T) {
	f := &Fleet{
		Clusters: []*Cluster{{Metadata: ObjectMeta{Name: "x", Labels: map[string]string{"gpu": "true"}},
			Spec: ClusterSpec{Credentials: Credentials{SecretRef: &SecretKeyRef{Name: "x", Key: "k"}}, Namespaces: NamespacePolicy{Mode: NamespaceModeSame}}}},
		Policies: []*PlacementPolicy{
			{Metadata: ObjectMeta{Name: "a"}, Spec: PlacementPolicySpec{ClusterSelector: &LabelSelector{}, Node: NodeTemplate{Labels: map[string]string{"k": "a"}}}},
			{Metadata: ObjectMeta{Name: "b"}, Spec: PlacementPolicySpec{ClusterSelector: &LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}, Node: NodeTemplate{Labels: map[string]string{"k": "b"}}}},
		},
	}
	_, err := DesiredNodes(f)
	want := []string{`: spec.node.labels[k]: label "k" conflicts: policy "b" sets "b" but policy "a" ((unknown)) sets "a", for cluster x`}
	if got := errorLines(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	f.Policies = f.Policies[:1]
	nodes, err := DesiredNodes(f)
	if err != nil || len(nodes) != 1 || nodes[0].Labels["k"] != "a" || nodes[0].Source != "" {
		t.Errorf("DesiredNodes = %+v, %v", nodes, err)
	}
}
