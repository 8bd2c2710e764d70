package reconcile

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// WriteText writes the plan for people: one line "+ node NAME" per
// addition (followed by the new node's labels, taints, capacity,
// namespaces and credentials, indented), one line
// "~ node NAME: DETAIL" per difference of an update (for example
// "~ node gke-001: taint added gpu=true:NoSchedule"), one line
// "- node NAME" per removal, in plan order, then a blank line and
// "Plan: A to add, C to change, R to remove.". The output is stable: the
// same plan always renders the same bytes.
func (p *Plan) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, p.Text())
	return err
}

// Text returns what WriteText writes.
func (p *Plan) Text() string {
	var b strings.Builder
	if p.Empty() {
		fmt.Fprintf(&b, "No changes: %d %s up to date.\n", p.DesiredCount, plural(p.DesiredCount, "node", "nodes"))
		return b.String()
	}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionAdd:
			writeAdded(&b, c.Desired)
		case ActionUpdate:
			for _, d := range c.Details {
				fmt.Fprintf(&b, "~ node %s: %s\n", c.Name, d)
			}
		case ActionRemove:
			fmt.Fprintf(&b, "- node %s\n", c.Name)
		}
	}
	add, update, remove := p.Counts()
	fmt.Fprintf(&b, "\nPlan: %d to add, %d to change, %d to remove.\n", add, update, remove)
	return b.String()
}

func writeAdded(b *strings.Builder, n *NodeSpec) {
	fmt.Fprintf(b, "+ node %s\n", n.Name)
	labels := make([]string, 0, len(n.Labels))
	for _, k := range sortedKeys(n.Labels) {
		labels = append(labels, k+"="+n.Labels[k])
	}
	taints := make([]string, len(n.Taints))
	for i, t := range n.Taints {
		taints[i] = t.String()
	}
	fmt.Fprintf(b, "    labels: %s\n", listOrNone(labels))
	fmt.Fprintf(b, "    taints: %s\n", listOrNone(taints))
	fmt.Fprintf(b, "    capacity: %s\n", n.Capacity)
	if n.Cordon {
		b.WriteString("    cordon: on\n")
	}
	fmt.Fprintf(b, "    namespaces: %s\n", n.Namespaces)
	fmt.Fprintf(b, "    credentials: %s\n", n.Credentials)
	for _, r := range n.TolerateIn {
		fmt.Fprintf(b, "    tolerateIn %s: %s\n", r.Policy, r)
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// MaxSummary is the longest Summary, in characters (what commit status
// descriptions accept).
const MaxSummary = 140

// Summary returns the plan in one line of at most MaxSummary characters:
// additions, removals, then updates grouped by field, e.g.
// "+1 node cern-003 · -1 node old-1 · taint changed on gke-001", or
// "no changes".
func (p *Plan) Summary() string {
	if p.Empty() {
		return "no changes"
	}
	var adds, removes []string
	changed := map[Field][]string{}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionAdd:
			adds = append(adds, c.Name)
		case ActionRemove:
			removes = append(removes, c.Name)
		case ActionUpdate:
			for _, d := range c.Details {
				names := changed[d.Field]
				if len(names) == 0 || names[len(names)-1] != c.Name {
					changed[d.Field] = append(names, c.Name)
				}
			}
		}
	}
	var parts []string
	if len(adds) > 0 {
		parts = append(parts, fmt.Sprintf("+%d %s %s", len(adds), plural(len(adds), "node", "nodes"), shortList(adds)))
	}
	if len(removes) > 0 {
		parts = append(parts, fmt.Sprintf("-%d %s %s", len(removes), plural(len(removes), "node", "nodes"), shortList(removes)))
	}
	for _, f := range fieldOrder {
		if names := changed[f]; len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%s changed on %s", f, shortList(names)))
		}
	}
	s := strings.Join(parts, " · ")
	if utf8.RuneCountInString(s) > MaxSummary {
		r := []rune(s)
		s = string(r[:MaxSummary-1]) + "…"
	}
	return s
}

var fieldOrder = []Field{FieldLabel, FieldTaint, FieldCapacity, FieldCordon, FieldNamespaces, FieldCredentials, FieldTolerateIn}

// shortList renders up to three names, then "and N more".
func shortList(names []string) string {
	const show = 3
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
