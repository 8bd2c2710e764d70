package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// declarer is the Cluster or PlacementPolicy that set a label or taint.
type declarer struct {
	cluster *Cluster // set when the Cluster itself declared it
	policy  *PlacementPolicy
}

func (d declarer) String() string {
	if d.policy != nil {
		return fmt.Sprintf("policy %q", d.policy.Metadata.Name)
	}
	return fmt.Sprintf("cluster %q", d.cluster.Metadata.Name)
}

func (d declarer) where(path fieldPath) string {
	if d.policy != nil {
		return d.policy.doc.where(path)
	}
	return d.cluster.doc.where(path)
}

// conflict is one pair of declarations disagreeing, over every cluster
// where both apply.
type conflict struct {
	first, second declarer
	what          string // "label" or "taint"
	key           string // label key, or taint key:effect
	firstPath     fieldPath
	secondPath    fieldPath
	firstValue    string
	secondValue   string
	clusters      []string
}

type conflictKey struct {
	what, key, firstPolicy, firstCluster, secondPolicy string
}

// desiredNodes merges each (valid) Cluster with the PlacementPolicies that
// select it into NodeSpecs, sorted by name. Two declarations setting one
// label key (or one taint key and effect) to different values for the same
// cluster are an error, reported once per pair at the later policy.
func desiredNodes(f *Fleet) ([]NodeSpec, ErrorList) {
	type compiled struct {
		p     *PlacementPolicy
		sel   labels.Selector
		nsSel string
	}
	policies := make([]compiled, 0, len(f.Policies))
	for _, p := range f.Policies {
		if p.Spec.ClusterSelector == nil {
			continue
		}
		sel, err := toSelector(p.Spec.ClusterSelector)
		if err != nil {
			continue // reported by validation
		}
		cp := compiled{p: p, sel: sel}
		if p.Spec.TolerateIn != nil {
			ns, err := toSelector(&p.Spec.TolerateIn.NamespaceSelector)
			if err != nil {
				continue
			}
			cp.nsSel = ns.String()
		}
		policies = append(policies, cp)
	}
	slices.SortFunc(policies, func(a, b compiled) int { return strings.Compare(a.p.Metadata.Name, b.p.Metadata.Name) })

	clusters := slices.Clone(f.Clusters)
	slices.SortFunc(clusters, func(a, b *Cluster) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })

	conflicts := map[conflictKey]*conflict{}
	var conflictOrder []*conflict
	record := func(what, key string, first declarer, firstPath fieldPath, firstValue string, second declarer, secondPath fieldPath, secondValue, cluster string) {
		ck := conflictKey{what: what, key: key, secondPolicy: second.policy.Metadata.Name}
		if first.policy != nil {
			ck.firstPolicy = first.policy.Metadata.Name
		} else {
			ck.firstCluster = first.cluster.Metadata.Name
		}
		c := conflicts[ck]
		if c == nil {
			c = &conflict{first: first, second: second, what: what, key: key, firstPath: firstPath, secondPath: secondPath, firstValue: firstValue, secondValue: secondValue}
			conflicts[ck] = c
			conflictOrder = append(conflictOrder, c)
		}
		c.clusters = append(c.clusters, cluster)
	}

	nodes := make([]NodeSpec, 0, len(clusters))
	for _, c := range clusters {
		n := NodeSpec{
			Name:        c.Metadata.Name,
			Labels:      maps.Clone(c.Spec.Node.Labels),
			Taints:      slices.Clone(c.Spec.Node.Taints),
			Capacity:    c.Spec.Node.Capacity,
			Cordon:      c.Spec.Cordon,
			Namespaces:  c.Spec.Namespaces,
			Credentials: c.Spec.Credentials,
			Source:      c.doc.source(),
		}
		// The namespaces are a set: their order in the declaration is no change.
		n.Namespaces.RestrictTo = slices.Sorted(slices.Values(n.Namespaces.RestrictTo))
		if n.Credentials.SecretRef != nil {
			ref := *n.Credentials.SecretRef
			n.Credentials.SecretRef = &ref
		}
		clusterLabels := labels.Set(c.Metadata.Labels)
		var labelFrom map[string]declarer
		var labelPath map[string]fieldPath
		type taintID struct {
			key    string
			effect TaintEffect
		}
		var taintFrom map[taintID]int // index into n.Taints
		var taintDecl []declarer
		var taintPath []fieldPath
		for _, cp := range policies {
			if !cp.sel.Matches(clusterLabels) {
				continue
			}
			p := cp.p
			n.Policies = append(n.Policies, p.Metadata.Name)
			if labelFrom == nil {
				labelFrom = make(map[string]declarer, len(n.Labels))
				labelPath = make(map[string]fieldPath, len(n.Labels))
				for k := range n.Labels {
					labelFrom[k] = declarer{cluster: c}
					labelPath[k] = fieldPath{}.child("spec").child("node").child("labels").key(k)
				}
				taintFrom = make(map[taintID]int, len(n.Taints))
				for i, t := range n.Taints {
					taintFrom[taintID{t.Key, t.Effect}] = i
					taintDecl = append(taintDecl, declarer{cluster: c})
					taintPath = append(taintPath, fieldPath{}.child("spec").child("node").child("taints").index(i))
				}
			}
			for _, k := range sortedKeys(p.Spec.Node.Labels) {
				v := p.Spec.Node.Labels[k]
				path := fieldPath{}.child("spec").child("node").child("labels").key(k)
				old, ok := n.Labels[k]
				switch {
				case !ok:
					if n.Labels == nil {
						n.Labels = map[string]string{}
					}
					n.Labels[k] = v
					labelFrom[k] = declarer{policy: p}
					labelPath[k] = path
				case old != v:
					record("label", k, labelFrom[k], labelPath[k], old, declarer{policy: p}, path, v, c.Metadata.Name)
				}
			}
			for i, t := range p.Spec.Node.Taints {
				path := fieldPath{}.child("spec").child("node").child("taints").index(i)
				id := taintID{t.Key, t.Effect}
				j, ok := taintFrom[id]
				switch {
				case !ok:
					taintFrom[id] = len(n.Taints)
					n.Taints = append(n.Taints, t)
					taintDecl = append(taintDecl, declarer{policy: p})
					taintPath = append(taintPath, path)
				case n.Taints[j].Value != t.Value:
					record("taint", t.Key+":"+string(t.Effect), taintDecl[j], taintPath[j], n.Taints[j].Value, declarer{policy: p}, path, t.Value, c.Metadata.Name)
				}
			}
			pc := &p.Spec.Node.Capacity
			n.Capacity.CPU = minQuantity(n.Capacity.CPU, pc.CPU)
			n.Capacity.Memory = minQuantity(n.Capacity.Memory, pc.Memory)
			n.Capacity.Pods = minQuantity(n.Capacity.Pods, pc.Pods)
			if p.Spec.TolerateIn != nil {
				t := withProviderTaint(slices.Clone(p.Spec.Node.Taints))
				sortTaints(t)
				n.TolerateIn = append(n.TolerateIn, TolerationRule{Policy: p.Metadata.Name, NamespaceSelector: cp.nsSel, Taints: t})
			}
		}
		if c.Spec.ProviderTaint == nil || *c.Spec.ProviderTaint {
			n.Taints = withProviderTaint(n.Taints)
		}
		sortTaints(n.Taints)
		n.Capacity = cloneCapacity(n.Capacity)
		nodes = append(nodes, n)
	}

	var errs ErrorList
	for _, c := range conflictOrder {
		d := c.second.policy.doc
		errs = append(errs, d.errorf(c.secondPath, "%s %q conflicts: policy %q sets %q but %s (%s) sets %q, for %s",
			c.what, c.key, c.second.policy.Metadata.Name, c.secondValue, c.first, c.first.where(c.firstPath), c.firstValue, clusterList(c.clusters)))
	}
	return nodes, errs
}

// clusterList renders "cluster a" or "clusters a, b, c and 4 more".
func clusterList(names []string) string {
	const show = 3
	if len(names) == 1 {
		return "cluster " + names[0]
	}
	s := "clusters " + strings.Join(names[:min(show, len(names))], ", ")
	if len(names) > show {
		s += fmt.Sprintf(" and %d more", len(names)-show)
	}
	return s
}

// sortNodes orders NodeSpecs by name.
func sortNodes(n []NodeSpec) {
	slices.SortFunc(n, func(a, b NodeSpec) int { return cmp.Compare(a.Name, b.Name) })
}

// ProviderTaint is the taint every virtual node carries unless its Cluster
// sets providerTaint: false. Pods that do not tolerate it stay off virtual
// nodes: a DaemonSet or a workload of the master's own is not sent to a
// remote cluster by accident. Every tolerateIn rule tolerates it, so the
// namespaces a policy opts in run there unchanged.
var ProviderTaint = Taint{Key: "virtual-kubelet.io/provider", Value: "atoll", Effect: TaintEffectNoSchedule}

// withProviderTaint adds ProviderTaint to taints unless a taint of its key
// and effect is there already (declared with another value: that one stays).
func withProviderTaint(taints []Taint) []Taint {
	for _, t := range taints {
		if t.Key == ProviderTaint.Key && t.Effect == ProviderTaint.Effect {
			return taints
		}
	}
	return append(taints, ProviderTaint)
}
