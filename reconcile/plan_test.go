package reconcile

import (
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/atoll-dev/atoll/test/golden"
)

func q(s string) *resource.Quantity {
	v := resource.MustParse(s)
	return &v
}

func secret(name string) Credentials {
	return Credentials{SecretRef: &SecretKeyRef{Name: name, Key: DefaultSecretKey}}
}

func node(name string, mod ...func(*NodeSpec)) NodeSpec {
	n := NodeSpec{Name: name, Namespaces: NamespacePolicy{Mode: NamespaceModeSame}, Credentials: secret(name + "-kubeconfig")}
	for _, m := range mod {
		m(&n)
	}
	return n
}

func TestComputePlan(t *testing.T) {
	gpu := Taint{Key: "gpu", Value: "true", Effect: TaintEffectNoSchedule}
	tests := []struct {
		name        string
		desired     []NodeSpec
		live        []NodeSpec
		wantActions []string // "add a", "update b", ...
		wantDetails []string // every detail of every update, in order
	}{
		{
			name:    "nothing changes",
			desired: []NodeSpec{node("a"), node("b")},
			live:    []NodeSpec{node("b"), node("a")},
		},
		{
			name:        "adds first, then updates, then removes, each by name",
			desired:     []NodeSpec{node("z"), node("m", func(n *NodeSpec) { n.Cordon = true }), node("c"), node("a")},
			live:        []NodeSpec{node("y"), node("m"), node("b"), node("c")},
			wantActions: []string{"add a", "add z", "update m", "remove b", "remove y"},
			wantDetails: []string{"cordon on"},
		},
		{
			name: "every kind of detail, in a fixed order",
			desired: []NodeSpec{node("n", func(n *NodeSpec) {
				n.Labels = map[string]string{"keep": "1", "new": "x", "changed": "after"}
				n.Taints = []Taint{gpu}
				n.Capacity = Capacity{CPU: q("200"), Pods: q("100")}
				n.Namespaces = NamespacePolicy{Mode: NamespaceModePrefix, Prefix: "hub-"}
				n.Credentials = Credentials{Path: "k.yaml"}
				n.TolerateIn = []TolerationRule{{Policy: "gpu", NamespaceSelector: "team=ml", Taints: []Taint{gpu}}}
			})},
			live: []NodeSpec{node("n", func(n *NodeSpec) {
				n.Labels = map[string]string{"keep": "1", "old": "y", "changed": "before"}
				n.Taints = []Taint{{Key: "old", Effect: TaintEffectNoExecute}}
				n.Capacity = Capacity{CPU: q("400"), Memory: q("2Ti")}
				n.Cordon = true
			})},
			wantActions: []string{"update n"},
			wantDetails: []string{
				"label changed changed: before -> after",
				"label added new=x",
				"label removed old=y",
				"taint removed old:NoExecute",
				"taint added gpu=true:NoSchedule",
				"capacity cpu changed: 400 -> 200",
				"capacity memory removed 2Ti",
				"capacity pods added 100",
				"cordon off",
				"namespaces changed: Same -> Prefix hub-",
				"credentials changed: secret n-kubeconfig key kubeconfig -> path k.yaml",
				"tolerateIn gpu added namespaces team=ml tolerate gpu=true:NoSchedule",
			},
		},
		{
			name:    "equal quantities written differently are no change",
			desired: []NodeSpec{node("n", func(n *NodeSpec) { n.Capacity.Memory = q("1Gi") })},
			live:    []NodeSpec{node("n", func(n *NodeSpec) { n.Capacity.Memory = q("1073741824") })},
		},
		{
			name:    "taint order does not matter",
			desired: []NodeSpec{node("n", func(n *NodeSpec) { n.Taints = []Taint{gpu, {Key: "b", Effect: TaintEffectNoSchedule}} })},
			live:    []NodeSpec{node("n", func(n *NodeSpec) { n.Taints = []Taint{{Key: "b", Effect: TaintEffectNoSchedule}, gpu} })},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ComputePlan(tt.desired, tt.live)
			var actions, details []string
			for _, c := range p.Changes {
				actions = append(actions, string(c.Action)+" "+c.Name)
				for _, d := range c.Details {
					details = append(details, d.String())
				}
			}
			if !slices.Equal(actions, tt.wantActions) {
				t.Errorf("actions %q, want %q", actions, tt.wantActions)
			}
			if !slices.Equal(details, tt.wantDetails) {
				t.Errorf("details:\n%s\nwant:\n%s", join(details), join(tt.wantDetails))
			}
			if p.Empty() != (len(tt.wantActions) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

func TestComputePlanDoesNotModifyInputs(t *testing.T) {
	desired := []NodeSpec{node("b"), node("a")}
	live := []NodeSpec{node("c")}
	ComputePlan(desired, live)
	if desired[0].Name != "b" || desired[1].Name != "a" || len(live) != 1 {
		t.Errorf("inputs reordered: %v %v", desired, live)
	}
}

func TestPlanText(t *testing.T) {
	gpu := Taint{Key: "gpu", Value: "true", Effect: TaintEffectNoSchedule}
	desired := []NodeSpec{
		node("cern-003", func(n *NodeSpec) {
			n.Labels = map[string]string{"topology.kubernetes.io/region": "geneva", "gpu": "true"}
			n.Taints = []Taint{gpu}
			n.Capacity = Capacity{CPU: q("400"), Memory: q("2Ti"), Pods: q("5000")}
			n.Cordon = true
			n.TolerateIn = []TolerationRule{{Policy: "gpu", NamespaceSelector: "team=ml", Taints: []Taint{gpu}}}
		}),
		node("gke-001", func(n *NodeSpec) { n.Taints = []Taint{gpu} }),
		node("same"),
	}
	live := []NodeSpec{node("gke-001"), node("old-1"), node("same")}
	tests := []struct {
		name        string
		desired     []NodeSpec
		live        []NodeSpec
		golden      string
		wantSummary string
	}{
		{name: "changes", desired: desired, live: live, golden: "plan_changes_expected.txt",
			wantSummary: "+1 node cern-003 · -1 node old-1 · taint changed on gke-001"},
		{name: "no changes", desired: live, live: live, golden: "plan_nochange_expected.txt", wantSummary: "no changes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ComputePlan(tt.desired, tt.live)
			golden.Check(t, filepath.Join("testdata", tt.golden), p.Text())
			if got := p.Summary(); got != tt.wantSummary {
				t.Errorf("Summary() = %q, want %q", got, tt.wantSummary)
			}
		})
	}
}

func TestPlanSummary(t *testing.T) {
	var many []NodeSpec
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		many = append(many, node("node-with-a-rather-long-name-"+n))
	}
	tests := []struct {
		name          string
		desired, live []NodeSpec
		want          string
	}{
		{"several of each", []NodeSpec{node("a", func(n *NodeSpec) { n.Labels = map[string]string{"x": "1"} }), node("b", func(n *NodeSpec) { n.Cordon = true }), node("n1"), node("n2")},
			[]NodeSpec{node("a"), node("b"), node("r1"), node("r2")},
			"+2 nodes n1, n2 · -2 nodes r1, r2 · label changed on a · cordon changed on b"},
		{"long lists are cut", many, nil,
			"+5 nodes node-with-a-rather-long-name-a, node-with-a-rather-long-name-b, node-with-a-rather-long-name-c and 2 more"},
		{"capped at MaxSummary", append(slices.Clone(many), node("x")), []NodeSpec{node("x", func(n *NodeSpec) { n.Cordon = true; n.Labels = map[string]string{"a": "b"} })},
			"+5 nodes node-with-a-rather-long-name-a, node-with-a-rather-long-name-b, node-with-a-rather-long-name-c and 2 more · label changed on x · c…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ComputePlan(tt.desired, tt.live).Summary()
			if got != tt.want {
				t.Errorf("Summary() =\n%q, want\n%q", got, tt.want)
			}
			if n := len([]rune(got)); n > MaxSummary {
				t.Errorf("Summary() has %d characters, more than %d", n, MaxSummary)
			}
		})
	}
}
