package vnode

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/atoll-dev/atoll/test/golden"
)

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return &p
}

func testNodeSpec() NodeSpec {
	return NodeSpec{
		Name:   "cern-001",
		Labels: map[string]string{"topology.kubernetes.io/region": "geneva"},
		Taints: []corev1.Taint{
			{Key: "virtual-kubelet.io/provider", Value: "atoll", Effect: corev1.TaintEffectNoSchedule},
			{Key: "atoll.dev/gpu", Effect: corev1.TaintEffectNoSchedule},
		},
	}
}

func TestTranslatePod(t *testing.T) {
	spec := testNodeSpec()
	base := TranslateOptions{
		NodeName:   spec.Name,
		MasterID:   "0123456789abcdef",
		Namespaces: NamespaceMapping{Mode: NamespaceSame},
		NodeLabels: selectorDroppedLabels(nodeLabels(spec)),
		NodeTaints: spec.Taints,
		ServiceAccountExists: func(namespace, name string) bool {
			return namespace == "shop" && name == "web"
		},
	}
	prefixed := base
	prefixed.Namespaces = NamespaceMapping{Mode: NamespacePrefix, Prefix: "hub-"}

	tests := []struct {
		name  string
		input string
		opts  TranslateOptions
	}{
		{name: "basic", input: "basic", opts: base},
		{name: "prefix_namespace", input: "basic", opts: prefixed},
		{name: "placement", input: "placement", opts: base},
		{name: "partial_affinity", input: "partial_affinity", opts: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readPod(t, filepath.Join("testdata", tt.input+"_input.yaml"))
			before := in.DeepCopy()
			got, err := TranslatePod(in, tt.opts)
			if err != nil {
				t.Fatalf("TranslatePod: %v", err)
			}
			if diff := cmp.Diff(before, in); diff != "" {
				t.Fatalf("TranslatePod changed its input (-before +after):\n%s", diff)
			}
			gotYAML, err := yaml.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.name+"_expected.yaml"), string(gotYAML))
			// Translating twice gives the same result (pure).
			again, _ := TranslatePod(in, tt.opts)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("TranslatePod is not deterministic:\n%s", diff)
			}
		})
	}
}

func TestTranslatePodErrors(t *testing.T) {
	ok := TranslateOptions{NodeName: "n", MasterID: "m"}
	tests := []struct {
		name string
		pod  *corev1.Pod
		opts TranslateOptions
	}{
		{name: "nil pod", pod: nil, opts: ok},
		{name: "no uid", pod: &corev1.Pod{}, opts: ok},
		{name: "no master id", pod: &corev1.Pod{}, opts: TranslateOptions{NodeName: "n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pod != nil {
				tt.pod.UID = "u"
				if tt.name == "no uid" {
					tt.pod.UID = ""
				}
			}
			if _, err := TranslatePod(tt.pod, tt.opts); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestNamespaceMapping(t *testing.T) {
	tests := []struct {
		name       string
		m          NamespaceMapping
		master     string
		wantRemote string
		wantBack   bool
	}{
		{name: "same", m: NamespaceMapping{Mode: NamespaceSame}, master: "shop", wantRemote: "shop", wantBack: true},
		{name: "empty mode is same", m: NamespaceMapping{}, master: "shop", wantRemote: "shop", wantBack: true},
		{name: "prefix", m: NamespaceMapping{Mode: NamespacePrefix, Prefix: "hub-"}, master: "shop", wantRemote: "hub-shop", wantBack: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.m.Remote(tt.master)
			if got != tt.wantRemote {
				t.Fatalf("Remote(%q) = %q, want %q", tt.master, got, tt.wantRemote)
			}
			back, ok := tt.m.Master(got)
			if ok != tt.wantBack || back != tt.master {
				t.Fatalf("Master(%q) = %q, %v; want %q, %v", got, back, ok, tt.master, tt.wantBack)
			}
		})
	}
	if _, ok := (NamespaceMapping{Mode: NamespacePrefix, Prefix: "hub-"}).Master("other"); ok {
		t.Fatal("a namespace without the prefix must not map back")
	}
}
