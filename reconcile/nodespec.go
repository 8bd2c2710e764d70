package reconcile

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// NodeSpec is the desired shape of one virtual node: what the vnode
// manager creates or updates. It is plain data; comparing two NodeSpecs is
// what Plan does.
type NodeSpec struct {
	// Name is the virtual node's name, the Cluster's metadata.name.
	Name string
	// Labels are the declared labels (the Cluster's spec.node.labels plus
	// those of every matching PlacementPolicy). The labels Atoll always
	// sets (ReservedLabelKeys) are not included.
	Labels map[string]string
	// Taints are the declared taints, sorted by key, effect and value.
	Taints []Taint
	// Capacity caps what the node advertises; nil fields are uncapped.
	// When a Cluster and policies cap the same resource the smallest wins.
	Capacity Capacity
	// Cordon makes the node unschedulable; running pods stay.
	Cordon bool
	// Namespaces says where pods' namespaces land in the remote.
	Namespaces NamespacePolicy
	// Credentials locate the remote's kubeconfig, as declared (secretRef
	// key defaulted). Use Credentials.Resolve for a path.
	Credentials Credentials
	// TolerateIn lists the automatic tolerations asked for by policies,
	// sorted by policy name.
	TolerateIn []TolerationRule
	// Policies names the PlacementPolicies that picked this cluster,
	// sorted; informational, not compared by Plan.
	Policies []string
	// Source is the file where the Cluster is declared, with ":line" when
	// known without parsing it again (plain YAML); informational, not
	// compared by Plan.
	Source string
}

// TolerationRule says: pods in namespaces matching NamespaceSelector get
// tolerations for Taints.
type TolerationRule struct {
	// Policy is the PlacementPolicy asking for it.
	Policy string
	// NamespaceSelector in the Kubernetes selector string form
	// (labels.Parse accepts it); "" selects every namespace.
	NamespaceSelector string
	Taints            []Taint
}

// Resolve returns the kubeconfig path for a path credential, joined to
// fleetDir when relative, and "" for a secretRef.
func (c Credentials) Resolve(fleetDir string) string {
	if c.Path == "" || filepath.IsAbs(c.Path) {
		return c.Path
	}
	return filepath.Join(fleetDir, filepath.FromSlash(c.Path))
}

// String renders the credentials for plans and logs.
func (c Credentials) String() string {
	switch {
	case c.SecretRef != nil:
		return "secret " + c.SecretRef.Name + " key " + c.SecretRef.Key
	case c.Path != "":
		return "path " + c.Path
	default:
		return "none"
	}
}

// String renders the namespace policy: "Same", "Prefix hub-", and the
// namespaces it is restricted to: "Same, only in shop,blog".
func (n NamespacePolicy) String() string {
	s := string(n.Mode)
	switch n.Mode {
	case NamespaceModePrefix:
		s += " " + n.Prefix
	case "":
		s = string(NamespaceModeSame)
	}
	if len(n.RestrictTo) > 0 {
		s += ", only in " + strings.Join(n.RestrictTo, ",")
	}
	return s
}

// String renders the caps: "cpu=4, memory=8Gi" or "none".
func (c Capacity) String() string {
	var parts []string
	for _, r := range capacityResources(&c) {
		if r.q != nil {
			parts = append(parts, r.name+"="+formatQuantity(r.name, r.q))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func sortTaints(t []Taint) {
	slices.SortFunc(t, func(a, b Taint) int {
		return strings.Compare(a.Key+"\x00"+string(a.Effect)+"\x00"+a.Value, b.Key+"\x00"+string(b.Effect)+"\x00"+b.Value)
	})
}

func minQuantity(a, b *resource.Quantity) *resource.Quantity {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.Cmp(*a) < 0:
		return b
	default:
		return a
	}
}

func quantityEqual(a, b *resource.Quantity) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Cmp(*b) == 0
}

// formatQuantity formats a capacity: pods as a plain integer ("1000",
// not "1k"), others canonically.
func formatQuantity(name string, q *resource.Quantity) string {
	if name == "pods" {
		if v, ok := q.AsInt64(); ok {
			return strconv.FormatInt(v, 10)
		}
	}
	return quantityString(q)
}

// quantityString formats q without touching q (Quantity.String caches
// into its receiver, a data race on shared values).
func quantityString(q *resource.Quantity) string {
	c := q.DeepCopy()
	return c.String()
}

// cloneCapacity returns caps that share no memory with c.
func cloneCapacity(c Capacity) Capacity {
	cp := func(q *resource.Quantity) *resource.Quantity {
		if q == nil {
			return nil
		}
		d := q.DeepCopy()
		return &d
	}
	return Capacity{CPU: cp(c.CPU), Memory: cp(c.Memory), Pods: cp(c.Pods)}
}

type namedQuantity struct {
	name string
	q    *resource.Quantity
}

// capacityResources lists the caps in a fixed order: cpu, memory, pods.
func capacityResources(c *Capacity) []namedQuantity {
	return []namedQuantity{{"cpu", c.CPU}, {"memory", c.Memory}, {"pods", c.Pods}}
}
