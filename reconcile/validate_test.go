package reconcile

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDecodeAndValidate(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		mode    Mode
		wantErr []string // exact lines, in order; nil: valid
	}{
		{
			name:  "valid minimal cluster",
			files: map[string]string{"a.yaml": clusterA},
		},
		{
			name: "taint effect names file and line",
			files: map[string]string{"clusters/cern.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: cern}
spec:
  credentials: {secretRef: {name: s}}
  node:
    taints: [{key: gpu, value: "true", effect: Nope}]
`},
			wantErr: []string{`clusters/cern.yaml:7: spec.node.taints[0].effect: unsupported value "Nope": want NoSchedule, PreferNoSchedule or NoExecute`},
		},
		{
			name: "labels in the prefixes Kubernetes reserves, as the kubelet's NodeRestriction",
			files: map[string]string{"c.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  credentials: {secretRef: {name: s}}
  node:
    labels:
      node-role.kubernetes.io/control-plane: ""
      kubernetes.io/role-x: a
      k8s.io/x: a
      sub.k8s.io/x: a
      topology.kubernetes.io/zone: z
      kubernetes.io/os: linux
      node.kubernetes.io/instance-type: big
      kubelet.kubernetes.io/x: a
      example.com/kubernetes.io: a
`},
			wantErr: []string{
				`c.yaml:8: spec.node.labels[node-role.kubernetes.io/control-plane]: label "node-role.kubernetes.io/control-plane" is in a prefix Kubernetes reserves; a node may set only what a kubelet may (kubernetes.io/arch, kubernetes.io/os, topology.kubernetes.io/region, topology.kubernetes.io/zone, keys under kubelet.kubernetes.io/, node.kubernetes.io/)`,
				`c.yaml:9: spec.node.labels[kubernetes.io/role-x]: label "kubernetes.io/role-x" is in a prefix Kubernetes reserves; a node may set only what a kubelet may (kubernetes.io/arch, kubernetes.io/os, topology.kubernetes.io/region, topology.kubernetes.io/zone, keys under kubelet.kubernetes.io/, node.kubernetes.io/)`,
				`c.yaml:10: spec.node.labels[k8s.io/x]: label "k8s.io/x" is in a prefix Kubernetes reserves; a node may set only what a kubelet may (kubernetes.io/arch, kubernetes.io/os, topology.kubernetes.io/region, topology.kubernetes.io/zone, keys under kubelet.kubernetes.io/, node.kubernetes.io/)`,
				`c.yaml:11: spec.node.labels[sub.k8s.io/x]: label "sub.k8s.io/x" is in a prefix Kubernetes reserves; a node may set only what a kubelet may (kubernetes.io/arch, kubernetes.io/os, topology.kubernetes.io/region, topology.kubernetes.io/zone, keys under kubelet.kubernetes.io/, node.kubernetes.io/)`,
			},
		},
		{
			name: "namespace prefixes that would reach kube- namespaces",
			files: map[string]string{"c.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  credentials: {secretRef: {name: s}}
  namespaces: {mode: Prefix, prefix: kube-hub-}
---
apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: d}
spec:
  credentials: {secretRef: {name: s}}
  namespaces: {mode: Prefix, prefix: kub}
---
apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: e}
spec:
  credentials: {secretRef: {name: s}}
  namespaces: {mode: Prefix, prefix: kubeflow-}
`},
			wantErr: []string{
				`c.yaml:6: spec.namespaces.prefix: prefix "kube-hub-" would name namespaces starting with "kube-", which a cluster keeps for its own components`,
				`c.yaml:13: spec.namespaces.prefix: prefix "kub" would name namespaces starting with "kube-", which a cluster keeps for its own components`,
			},
		},
		{
			name: "namespaces a Cluster is restricted to",
			files: map[string]string{"c.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  credentials: {secretRef: {name: s}}
  namespaces:
    restrictTo: [shop, Shop, kube-system, shop]
---
apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata: {name: d}
spec:
  credentials: {secretRef: {name: s}}
  namespaces:
    mode: Prefix
    prefix: hub-
    restrictTo: [hub-shop, shop]
`},
			wantErr: []string{
				`c.yaml:7: spec.namespaces.restrictTo[1]: invalid namespace "Shop": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`c.yaml:7: spec.namespaces.restrictTo[2]: namespace "kube-system": namespaces starting with "kube-" are the cluster's own components'`,
				`c.yaml:7: spec.namespaces.restrictTo[3]: namespace "shop" listed twice`,
				`c.yaml:17: spec.namespaces.restrictTo[1]: namespace "shop" does not start with the prefix "hub-": no pod would land there`,
			},
		},
		{
			name: "unknown fields at every level, all reported",
			files: map[string]string{"c.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: c
  uid: x
spec:
  credentials:
    secretRef: {name: s, namespace: other}
  node:
    lables: {a: b}
  replicas: 3
status: {}
`},
			wantErr: []string{
				`c.yaml:5: metadata.uid: unknown field`,
				`c.yaml:8: spec.credentials.secretRef.namespace: unknown field`,
				`c.yaml:10: spec.node.lables: unknown field`,
				`c.yaml:11: spec.replicas: unknown field`,
				`c.yaml:12: status: unknown field`,
			},
		},
		{
			name: "syntax of names, labels, taints and quantities",
			files: map[string]string{"c.yaml": `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: Bad_Name
  labels: {"-bad": ok, good: "not valid!"}
spec:
  credentials:
    secretRef: {name: s, key: "a/b"}
  node:
    labels:
      type: real
      atoll.dev/x: y
      ok: true
    taints:
      - {key: "a b", effect: NoSchedule}
      - {key: k, value: v, effect: NoExecute}
      - {key: k, value: w, effect: NoExecute}
      - {key: e}
    capacity: {cpu: "-1", memory: lots, pods: "1.5"}
  cordon: "yes"
`},
			wantErr: []string{
				`c.yaml:4: metadata.name: invalid name "Bad_Name": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`c.yaml:5: metadata.labels[-bad]: invalid label key "-bad": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`c.yaml:5: metadata.labels[good]: invalid label value "not valid!": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
				`c.yaml:8: spec.credentials.secretRef.key: invalid Secret key "a/b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
				`c.yaml:11: spec.node.labels[type]: label "type" is set by Atoll and cannot be declared`,
				`c.yaml:12: spec.node.labels[atoll.dev/x]: label "atoll.dev/x" is set by Atoll and cannot be declared`,
				`c.yaml:13: spec.node.labels[ok]: expected a string, got boolean true (quote it: "true")`,
				`c.yaml:15: spec.node.taints[0].key: invalid taint key "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`c.yaml:17: spec.node.taints[2]: duplicate taint k:NoExecute (also at taints[1])`,
				`c.yaml:18: spec.node.taints[3].effect: required: NoSchedule, PreferNoSchedule or NoExecute`,
				`c.yaml:19: spec.node.capacity.cpu: must be positive, got -1`,
				`c.yaml:19: spec.node.capacity.memory: invalid quantity "lots": want a number with an optional suffix such as 500m, 2Gi or 1k`,
				`c.yaml:19: spec.node.capacity.pods: must be a whole number, got 1500m`,
				`c.yaml:20: spec.cordon: expected true or false, got string "yes"`,
			},
		},
		{
			name:  "duplicate clusters and policies across files",
			files: map[string]string{"a.yaml": clusterA, "b.yaml": "# again\n" + clusterA, "p.yaml": policyGPU + "---\n" + policyGPU},
			wantErr: []string{
				`b.yaml:5: metadata.name: duplicate cluster "a" (first declared at a.yaml:4)`,
				`p.yaml:18: metadata.name: duplicate placement policy "gpu" (first declared at p.yaml:4)`,
			},
		},
		{
			name: "credentials: exactly one, path only in watch mode",
			files: map[string]string{
				"both.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: both}\nspec:\n  credentials: {secretRef: {name: s}, path: k.yaml}\n",
				"none.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: none}\nspec: {}\n",
				"path.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: path}\nspec:\n  credentials:\n    path: k.yaml\n",
			},
			mode: ModeGit,
			wantErr: []string{
				`both.yaml:5: spec.credentials: set exactly one of secretRef and path, not both`,
				`none.yaml:4: spec.credentials: required: set secretRef (a Secret in Atoll's namespace) or, in watch mode, path`,
				`path.yaml:6: spec.credentials.path: a kubeconfig path is allowed in watch mode only; in git mode use secretRef (credentials never live in git)`,
			},
		},
		{
			name:  "credentials: path is fine in watch mode",
			files: map[string]string{"path.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: path}\nspec:\n  credentials:\n    path: k.yaml\n"},
			mode:  ModeWatch,
		},
		{
			name: "namespaces",
			files: map[string]string{
				"a.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  credentials: {secretRef: {name: s}}\n  namespaces: {mode: Prefix}\n",
				"b.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: b}\nspec:\n  credentials: {secretRef: {name: s}}\n  namespaces: {prefix: x-}\n",
				"c.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  credentials: {secretRef: {name: s}}\n  namespaces: {mode: Other}\n",
				"d.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: d}\nspec:\n  credentials: {secretRef: {name: s}}\n  namespaces: {mode: Prefix, prefix: Hub_}\n",
			},
			wantErr: []string{
				`a.yaml:6: spec.namespaces.prefix: required with mode Prefix`,
				`b.yaml:6: spec.namespaces.prefix: only allowed with mode Prefix`,
				`c.yaml:6: spec.namespaces.mode: unsupported value "Other": want Same or Prefix`,
				`d.yaml:6: spec.namespaces.prefix: invalid prefix "Hub_": lower-case letters, digits and '-', starting with a letter or digit`,
			},
		},
		{
			name: "policy selectors",
			files: map[string]string{"p.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: p}
spec:
  clusterSelector:
    matchExpressions:
      - {key: gpu, operator: Maybe}
      - {key: zone, operator: In}
  tolerateIn:
    namespaceSelector: {matchLabels: {"team/": ml}}
---
apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: q}
spec: {}
`},
			wantErr: []string{
				`p.yaml:7: spec.clusterSelector.matchExpressions[0]: unsupported operator "Maybe": want In, NotIn, Exists or DoesNotExist`,
				`p.yaml:8: spec.clusterSelector.matchExpressions[1]: invalid requirement: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`,
				`p.yaml:10: spec.tolerateIn.namespaceSelector.matchLabels[team/]: invalid label key "team/": name part must be non-empty`,
				`p.yaml:10: spec.tolerateIn.namespaceSelector.matchLabels[team/]: invalid label key "team/": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`p.yaml:15: spec.clusterSelector: required (use {} to pick every cluster)`,
			},
		},
		{
			name: "other kinds, YAML errors and duplicate keys",
			files: map[string]string{
				"cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
				"kind.yaml":   "apiVersion: atoll.dev/v1alpha1\nkind: Clusters\nmetadata: {name: x}\n",
				"list.yaml":   "- a\n- b\n",
				"dupkey.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: d\n  name: e\nspec:\n  credentials: {secretRef: {name: s}}\n  node:\n    labels: {a: b, a: c}\n",
			},
			wantErr: []string{
				`cm.yaml:1: apiVersion: unsupported apiVersion "v1" (kind "ConfigMap"): a fleet holds only atoll.dev/v1alpha1 Cluster and PlacementPolicy`,
				`dupkey.yaml:5: metadata.name: duplicate field`,
				`dupkey.yaml:9: spec.node.labels[a]: duplicate key`,
				`kind.yaml:2: kind: unsupported kind "Clusters": want Cluster or PlacementPolicy`,
				`list.yaml:1: expected a YAML mapping (an object), got a list`,
			},
		},
		{
			name:    "YAML syntax error",
			files:   map[string]string{"ok.yaml": clusterA, "broken.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: [x\n"},
			wantErr: []string{`broken.yaml:4: invalid YAML: did not find expected ',' or ']'`},
		},
		{
			name: "policy conflicts: labels and taints, once per pair",
			files: map[string]string{
				"a.yaml": clusterA,
				"b.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: b\n  labels: {gpu: \"true\"}\nspec:\n  credentials: {secretRef: {name: s}}\n  node:\n    labels: {tier: gold}\n",
				"p1.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: p1}
spec:
  clusterSelector: {matchLabels: {gpu: "true"}}
  node:
    labels: {accel: nvidia, tier: gold}
    taints: [{key: gpu, value: "yes", effect: NoSchedule}]
`,
				"p2.yaml": `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata: {name: p2}
spec:
  clusterSelector: {}
  node:
    labels: {accel: amd, tier: silver}
    taints:
      - {key: gpu, value: "no", effect: NoSchedule}
      - {key: gpu, value: "no", effect: NoExecute}
`,
			},
			wantErr: []string{
				`p2.yaml:7: spec.node.labels[accel]: label "accel" conflicts: policy "p2" sets "amd" but policy "p1" (p1.yaml:7) sets "nvidia", for clusters a, b`,
				`p2.yaml:7: spec.node.labels[tier]: label "tier" conflicts: policy "p2" sets "silver" but cluster "b" (b.yaml:9) sets "gold", for cluster b`,
				`p2.yaml:7: spec.node.labels[tier]: label "tier" conflicts: policy "p2" sets "silver" but policy "p1" (p1.yaml:7) sets "gold", for cluster a`,
				`p2.yaml:9: spec.node.taints[0]: taint "gpu:NoSchedule" conflicts: policy "p2" sets "no" but policy "p1" (p1.yaml:8) sets "yes", for clusters a, b`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := tt.mode
			if mode == "" {
				mode = ModeGit
			}
			_, err := loadDir(t, tt.files, mode)
			got := errorLines(t, err)
			if !slices.Equal(got, tt.wantErr) {
				t.Errorf("errors:\n%s\nwant:\n%s", join(got), join(tt.wantErr))
			}
		})
	}
}

func join(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

const policyGPU = `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata:
  name: gpu
spec:
  clusterSelector:
    matchLabels: {gpu: "true"}
  node:
    labels: {accelerator: nvidia}
    taints: [{key: gpu, value: "true", effect: NoSchedule}]
    capacity: {cpu: "8", pods: "110"}
  tolerateIn:
    namespaceSelector: {matchLabels: {team: ml}}
`

func TestDecodeLimits(t *testing.T) {
	// 400 aliases of a 400-element list: 160,000 values once expanded.
	var b []byte
	b = append(b, "apiVersion: atoll.dev/v1alpha1\nkind: PlacementPolicy\nmetadata: {name: p}\nspec:\n  clusterSelector:\n    matchExpressions:\n"...)
	b = append(b, "      - {key: a, operator: In, values: &v ["...)
	for i := range 400 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, 'x')
	}
	b = append(b, "]}\n"...)
	for range 400 {
		b = append(b, "      - {key: a, operator: In, values: *v}\n"...)
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr []string
	}{
		{
			name:    "alias expansion is bounded",
			files:   map[string]string{"p.yaml": string(b)},
			wantErr: []string{`p.yaml:7: spec.clusterSelector.matchExpressions[247].values[199]: document too large: more than 100000 values (counting alias expansions)`},
		},
		{
			name:    "a kustomization below the fleet path is not built",
			files:   map[string]string{"sub/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"},
			wantErr: []string{`sub/kustomization.yaml:1: apiVersion: unsupported apiVersion "kustomize.config.k8s.io/v1beta1" (kind "Kustomization"): a fleet holds only atoll.dev/v1alpha1 Cluster and PlacementPolicy; only a kustomization at the fleet path itself is built (point the fleet path at its directory)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadDir(t, tt.files, ModeGit)
			if got := errorLines(t, err); !slices.Equal(got, tt.wantErr) {
				t.Errorf("errors:\n%s\nwant:\n%s", join(got), join(tt.wantErr))
			}
		})
	}
}

// TestMaxClusters: a revision declaring more Clusters than
// Limits.MaxClusters is refused, naming the first one over the cap.
func TestMaxClusters(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		files[n+".yaml"] = strings.Replace(clusterA, "name: a", "name: "+n, 1)
	}
	writeFiles(t, dir, files)
	if _, _, err := Load(context.Background(), dir, ".", WithLimits(Limits{MaxClusters: 3})); err != nil {
		t.Fatalf("3 clusters with a cap of 3: %v", err)
	}
	_, _, err := Load(context.Background(), dir, ".", WithLimits(Limits{MaxClusters: 2}))
	if !errors.Is(err, ErrLimitExceeded) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v is not ErrLimitExceeded and ErrInvalid", err)
	}
	want := []string{"c.yaml:1: cluster 3 of 3: a fleet may declare at most 2 clusters (Limits.MaxClusters)"}
	if got := errorLines(t, err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", join(got), join(want))
	}
}
