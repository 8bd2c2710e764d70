package admission

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationTolerations, on the webhook configuration, maps each policy's
// name to the tolerations its webhook adds (JSON).
const AnnotationTolerations = "atoll.dev/tolerations"

// Rule is one policy's tolerateIn: pods created in namespaces matching
// NamespaceSelector get Tolerations.
type Rule struct {
	// Policy names the PlacementPolicy; it names the webhook and its path.
	Policy string
	// NamespaceSelector in the selector string form labels.Parse reads;
	// "" selects every namespace.
	NamespaceSelector string
	Tolerations       []corev1.Toleration
}

// TolerationFor returns the toleration of exactly taint t.
func TolerationFor(t corev1.Taint) corev1.Toleration {
	return corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOpEqual, Value: t.Value, Effect: t.Effect}
}

// RuleSet collects the rules of the running virtual nodes (each node
// carries the rules of the policies that picked its cluster) and tells
// when their union changes. It is safe for concurrent use.
type RuleSet struct {
	mu      sync.Mutex
	byNode  map[string][]Rule
	changed chan struct{}
}

// NewRuleSet returns an empty set.
func NewRuleSet() *RuleSet {
	return &RuleSet{byNode: map[string][]Rule{}, changed: make(chan struct{}, 1)}
}

// Set records node's rules (none: the node has none) and signals Changed.
func (s *RuleSet) Set(node string, rules []Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rules) == 0 {
		delete(s.byNode, node)
	} else {
		s.byNode[node] = slices.Clone(rules)
	}
	// Every call counts, even one that changes nothing: the first ones
	// after a restart say the configuration is to be written (and maybe
	// emptied). Applying an unchanged configuration writes nothing.
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Changed receives a value after Set was called.
func (s *RuleSet) Changed() <-chan struct{} { return s.changed }

// Rules returns the union of every node's rules, one per policy, sorted
// by policy. Two nodes never disagree on a policy's rule (it is the
// policy's); if they do, the first node's, by name, wins.
func (s *RuleSet) Rules() []Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	byPolicy := map[string]Rule{}
	for _, node := range slices.Sorted(maps.Keys(s.byNode)) {
		for _, r := range s.byNode[node] {
			if _, ok := byPolicy[r.Policy]; !ok {
				byPolicy[r.Policy] = r
			}
		}
	}
	out := make([]Rule, 0, len(byPolicy))
	for _, p := range slices.Sorted(maps.Keys(byPolicy)) {
		out = append(out, byPolicy[p])
	}
	return out
}

// encodeTolerations is AnnotationTolerations' value for rules.
func encodeTolerations(rules []Rule) (string, error) {
	m := make(map[string][]corev1.Toleration, len(rules))
	for _, r := range rules {
		m[r.Policy] = r.Tolerations
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// decodeTolerations reads AnnotationTolerations.
func decodeTolerations(s string) (map[string][]corev1.Toleration, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string][]corev1.Toleration
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationTolerations, err)
	}
	return m, nil
}
