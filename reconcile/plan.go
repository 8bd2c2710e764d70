package reconcile

import (
	"maps"
	"slices"
	"strings"
)

// Action is what a Change does to a node.
type Action string

// The actions, in the order a plan applies them.
const (
	ActionAdd    Action = "add"
	ActionUpdate Action = "update"
	ActionRemove Action = "remove"
)

// Change is one node to add, update or remove.
type Change struct {
	Action Action
	Name   string
	// Desired is the node as it should be (nil for a removal).
	Desired *NodeSpec
	// Live is the node as it is (nil for an addition).
	Live *NodeSpec
	// Details lists what differs, for an update; empty otherwise.
	Details []Detail
}

// Field names the part of a node a Detail is about.
type Field string

// The fields a plan compares.
const (
	FieldLabel       Field = "label"
	FieldTaint       Field = "taint"
	FieldCapacity    Field = "capacity"
	FieldCordon      Field = "cordon"
	FieldNamespaces  Field = "namespaces"
	FieldCredentials Field = "credentials"
	FieldTolerateIn  Field = "tolerateIn"
)

// Op says how a field changed.
type Op string

// The operations on a field.
const (
	OpAdded   Op = "added"
	OpRemoved Op = "removed"
	OpChanged Op = "changed"
)

// Detail is one difference between the live and the desired node.
type Detail struct {
	Field Field
	Op    Op
	// Key is the label key, the taint (key=value:Effect), the capacity
	// resource or the tolerating policy; empty for single-valued fields.
	Key string
	// Old and New are the values before and after ("" when absent).
	Old, New string
}

// String renders the detail, e.g. "taint added gpu=true:NoSchedule" or
// "capacity cpu changed 400 -> 200".
func (d Detail) String() string {
	switch d.Field {
	case FieldCordon:
		if d.New == "true" {
			return "cordon on"
		}
		return "cordon off"
	case FieldTaint:
		return "taint " + string(d.Op) + " " + d.Key
	case FieldLabel:
		switch d.Op {
		case OpAdded:
			return "label added " + d.Key + "=" + d.New
		case OpRemoved:
			return "label removed " + d.Key + "=" + d.Old
		}
		return "label changed " + d.Key + ": " + d.Old + " -> " + d.New
	}
	var b strings.Builder
	b.WriteString(string(d.Field))
	if d.Key != "" {
		b.WriteString(" " + d.Key)
	}
	b.WriteString(" " + string(d.Op))
	switch d.Op {
	case OpAdded:
		b.WriteString(" " + d.New)
	case OpRemoved:
		b.WriteString(" " + d.Old)
	default:
		b.WriteString(": " + d.Old + " -> " + d.New)
	}
	return b.String()
}

// Plan is the ordered list of changes that turns the live nodes into the
// desired ones: additions first, then updates, then removals, each by name.
type Plan struct {
	Changes []Change
	// DesiredCount and LiveCount are the number of nodes on each side.
	DesiredCount, LiveCount int
}

// Empty reports whether nothing changes.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Counts returns the number of additions, updates and removals.
func (p *Plan) Counts() (add, update, remove int) {
	for _, c := range p.Changes {
		switch c.Action {
		case ActionAdd:
			add++
		case ActionUpdate:
			update++
		case ActionRemove:
			remove++
		}
	}
	return add, update, remove
}

// ComputePlan compares desired with live nodes (matched by name) and
// returns the changes; it is pure and deterministic. Neither input is
// modified; Change.Desired/Live point into copies.
func ComputePlan(desired, live []NodeSpec) *Plan {
	d := slices.Clone(desired)
	l := slices.Clone(live)
	sortNodes(d)
	sortNodes(l)
	p := &Plan{DesiredCount: len(d), LiveCount: len(l)}
	var adds, updates, removes []Change
	i, j := 0, 0
	for i < len(d) || j < len(l) {
		switch {
		case j >= len(l) || (i < len(d) && d[i].Name < l[j].Name):
			adds = append(adds, Change{Action: ActionAdd, Name: d[i].Name, Desired: &d[i]})
			i++
		case i >= len(d) || l[j].Name < d[i].Name:
			removes = append(removes, Change{Action: ActionRemove, Name: l[j].Name, Live: &l[j]})
			j++
		default:
			if details := diffNode(&l[j], &d[i]); len(details) > 0 {
				updates = append(updates, Change{Action: ActionUpdate, Name: d[i].Name, Desired: &d[i], Live: &l[j], Details: details})
			}
			i++
			j++
		}
	}
	p.Changes = slices.Concat(adds, updates, removes)
	return p
}

// diffNode lists the differences from live to desired, in a fixed order:
// labels, taints, capacity, cordon, namespaces, credentials, tolerateIn.
func diffNode(live, want *NodeSpec) []Detail {
	var out []Detail
	for _, k := range slices.Sorted(keysUnion(live.Labels, want.Labels)) {
		o, hadOld := live.Labels[k]
		n, hasNew := want.Labels[k]
		switch {
		case !hadOld:
			out = append(out, Detail{Field: FieldLabel, Op: OpAdded, Key: k, New: n})
		case !hasNew:
			out = append(out, Detail{Field: FieldLabel, Op: OpRemoved, Key: k, Old: o})
		case o != n:
			out = append(out, Detail{Field: FieldLabel, Op: OpChanged, Key: k, Old: o, New: n})
		}
	}
	oldT := taintSet(live.Taints)
	newT := taintSet(want.Taints)
	for _, t := range slices.Sorted(maps.Keys(oldT)) {
		if !newT[t] {
			out = append(out, Detail{Field: FieldTaint, Op: OpRemoved, Key: t, Old: t})
		}
	}
	for _, t := range slices.Sorted(maps.Keys(newT)) {
		if !oldT[t] {
			out = append(out, Detail{Field: FieldTaint, Op: OpAdded, Key: t, New: t})
		}
	}
	oc, nc := capacityResources(&live.Capacity), capacityResources(&want.Capacity)
	for i := range oc {
		o, n := oc[i].q, nc[i].q
		switch {
		case quantityEqual(o, n):
		case o == nil:
			out = append(out, Detail{Field: FieldCapacity, Op: OpAdded, Key: oc[i].name, New: formatQuantity(oc[i].name, n)})
		case n == nil:
			out = append(out, Detail{Field: FieldCapacity, Op: OpRemoved, Key: oc[i].name, Old: formatQuantity(oc[i].name, o)})
		default:
			out = append(out, Detail{Field: FieldCapacity, Op: OpChanged, Key: oc[i].name, Old: formatQuantity(oc[i].name, o), New: formatQuantity(oc[i].name, n)})
		}
	}
	if live.Cordon != want.Cordon {
		out = append(out, Detail{Field: FieldCordon, Op: OpChanged, Old: boolString(live.Cordon), New: boolString(want.Cordon)})
	}
	if o, n := live.Namespaces.String(), want.Namespaces.String(); o != n {
		out = append(out, Detail{Field: FieldNamespaces, Op: OpChanged, Old: o, New: n})
	}
	if o, n := live.Credentials.String(), want.Credentials.String(); o != n {
		out = append(out, Detail{Field: FieldCredentials, Op: OpChanged, Old: o, New: n})
	}
	out = append(out, diffTolerations(live.TolerateIn, want.TolerateIn)...)
	return out
}

func diffTolerations(live, want []TolerationRule) []Detail {
	render := func(rules []TolerationRule) map[string]string {
		m := make(map[string]string, len(rules))
		for _, r := range rules {
			m[r.Policy] = r.String()
		}
		return m
	}
	o, n := render(live), render(want)
	var out []Detail
	for _, k := range slices.Sorted(keysUnion(o, n)) {
		ov, hadOld := o[k]
		nv, hasNew := n[k]
		switch {
		case !hadOld:
			out = append(out, Detail{Field: FieldTolerateIn, Op: OpAdded, Key: k, New: nv})
		case !hasNew:
			out = append(out, Detail{Field: FieldTolerateIn, Op: OpRemoved, Key: k, Old: ov})
		case ov != nv:
			out = append(out, Detail{Field: FieldTolerateIn, Op: OpChanged, Key: k, Old: ov, New: nv})
		}
	}
	return out
}

// String renders the rule: "namespaces team=ml tolerate gpu=true:NoSchedule".
func (r TolerationRule) String() string {
	sel := r.NamespaceSelector
	if sel == "" {
		sel = "(all)"
	}
	ts := make([]string, len(r.Taints))
	for i, t := range r.Taints {
		ts[i] = t.String()
	}
	return "namespaces " + sel + " tolerate " + strings.Join(ts, ",")
}

func taintSet(ts []Taint) map[string]bool {
	m := make(map[string]bool, len(ts))
	for _, t := range ts {
		m[t.String()] = true
	}
	return m
}

func keysUnion[V any](a, b map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
		for k := range b {
			if _, dup := a[k]; dup {
				continue
			}
			if !yield(k) {
				return
			}
		}
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
