package reconcile

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ReservedLabelKeys are node labels Atoll sets itself; declarations may
// not set them (nor any other key in the atoll.dev/ prefix).
var ReservedLabelKeys = []string{"type", "kubernetes.io/role", "kubernetes.io/hostname", "atoll.dev/cluster"}

// reservedLabelDomains are the label domains Kubernetes keeps for itself;
// a node may set keys in them only as a kubelet may (NodeRestriction):
// the keys of kubeletLabels and those under kubeletLabelDomains. The rest,
// node-role.kubernetes.io/ above all, would let a fleet repository grant
// virtual nodes a role the master's policies trust.
var (
	reservedLabelDomains = []string{"kubernetes.io", "k8s.io"}
	kubeletLabelDomains  = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}
	kubeletLabels        = []string{
		"kubernetes.io/arch", "kubernetes.io/os", "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
		"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
		"beta.kubernetes.io/instance-type", "beta.kubernetes.io/arch", "beta.kubernetes.io/os",
	}
)

// inDomain reports whether the label key's prefix is one of domains or a
// subdomain of one.
func inDomain(key string, domains []string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	return slices.ContainsFunc(domains, func(d string) bool { return prefix == d || strings.HasSuffix(prefix, "."+d) })
}

// reservedNamespacePrefix is the prefix of the namespaces a cluster keeps
// for its own components (kube-system, kube-public, kube-node-lease).
const reservedNamespacePrefix = "kube-"

// MaxNamespacePrefix bounds namespaces.prefix so that prefixed namespace
// names keep room within the 63-character limit.
const MaxNamespacePrefix = 20

var namespacePrefixRE = regexp.MustCompile(`^[a-z0-9][-a-z0-9]*$`)

// validateFleet checks every declaration, and that there are at most
// maxClusters Clusters, and returns all problems found.
func validateFleet(f *Fleet, mode Mode, maxClusters int) ErrorList {
	var errs ErrorList
	add := func(e *FieldError) { errs = append(errs, e) }
	if len(f.Clusters) > maxClusters {
		e := f.Clusters[maxClusters].doc.errorf(fieldPath{}, "cluster %d of %d: a fleet may declare at most %d clusters (Limits.MaxClusters)",
			maxClusters+1, len(f.Clusters), maxClusters)
		e.cause = ErrLimitExceeded
		add(e)
	}

	clusters := make(map[string]*Cluster, len(f.Clusters))
	for _, c := range f.Clusters {
		validateMeta(c.doc, &c.Metadata, add)
		if first, ok := clusters[c.Metadata.Name]; ok && c.Metadata.Name != "" {
			add(c.doc.errorf(fieldPath{}.child("metadata").child("name"),
				"duplicate cluster %q (first declared at %s)", c.Metadata.Name, first.doc.where(fieldPath{}.child("metadata").child("name"))))
		} else {
			clusters[c.Metadata.Name] = c
		}
		validateClusterSpec(c, mode, add)
	}
	policies := make(map[string]*PlacementPolicy, len(f.Policies))
	for _, p := range f.Policies {
		validateMeta(p.doc, &p.Metadata, add)
		if first, ok := policies[p.Metadata.Name]; ok && p.Metadata.Name != "" {
			add(p.doc.errorf(fieldPath{}.child("metadata").child("name"),
				"duplicate placement policy %q (first declared at %s)", p.Metadata.Name, first.doc.where(fieldPath{}.child("metadata").child("name"))))
		} else {
			policies[p.Metadata.Name] = p
		}
		validatePolicySpec(p, add)
	}
	return errs
}

func validateMeta(d *document, m *ObjectMeta, add func(*FieldError)) {
	path := fieldPath{}.child("metadata")
	if m.Name == "" {
		add(d.errorf(path.child("name"), "required"))
	} else {
		for _, msg := range validation.IsDNS1123Label(m.Name) {
			add(d.errorf(path.child("name"), "invalid name %q: %s", m.Name, msg))
		}
	}
	validateLabels(d, path.child("labels"), m.Labels, false, add)
}

// validateLabels checks label syntax; node labels also may not use
// reserved keys.
func validateLabels(d *document, path fieldPath, l map[string]string, node bool, add func(*FieldError)) {
	for _, k := range sortedKeys(l) {
		for _, msg := range validation.IsQualifiedName(k) {
			add(d.errorf(path.key(k), "invalid label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(l[k]) {
			add(d.errorf(path.key(k), "invalid label value %q: %s", l[k], msg))
		}
		switch {
		case !node:
		case slices.Contains(ReservedLabelKeys, k) || strings.HasPrefix(k, "atoll.dev/"):
			add(d.errorf(path.key(k), "label %q is set by Atoll and cannot be declared", k))
		case inDomain(k, reservedLabelDomains) && !slices.Contains(kubeletLabels, k) && !inDomain(k, kubeletLabelDomains):
			add(d.errorf(path.key(k), "label %q is in a prefix Kubernetes reserves; a node may set only what a kubelet may (%s, keys under %s/)",
				k, strings.Join(kubeletLabels[:4], ", "), strings.Join(kubeletLabelDomains, "/, ")))
		}
	}
}

func validateClusterSpec(c *Cluster, mode Mode, add func(*FieldError)) {
	d := c.doc
	spec := fieldPath{}.child("spec")
	cred := spec.child("credentials")
	switch r := c.Spec.Credentials.SecretRef; {
	case r != nil && c.Spec.Credentials.Path != "":
		add(d.errorf(cred, "set exactly one of secretRef and path, not both"))
	case r == nil && c.Spec.Credentials.Path == "":
		add(d.errorf(cred, "required: set secretRef (a Secret in Atoll's namespace) or, in watch mode, path"))
	case r != nil:
		if r.Name == "" {
			add(d.errorf(cred.child("secretRef").child("name"), "required"))
		}
		for _, msg := range validation.IsDNS1123Subdomain(r.Name) {
			if r.Name != "" {
				add(d.errorf(cred.child("secretRef").child("name"), "invalid Secret name %q: %s", r.Name, msg))
			}
		}
		for _, msg := range validation.IsConfigMapKey(r.Key) {
			add(d.errorf(cred.child("secretRef").child("key"), "invalid Secret key %q: %s", r.Key, msg))
		}
	default:
		if mode != ModeWatch {
			add(d.errorf(cred.child("path"), "a kubeconfig path is allowed in watch mode only; in %s mode use secretRef (credentials never live in git)", modeName(mode)))
		}
	}
	validateNodeTemplate(d, spec.child("node"), &c.Spec.Node, add)

	ns := spec.child("namespaces")
	switch c.Spec.Namespaces.Mode {
	case NamespaceModeSame:
		if c.Spec.Namespaces.Prefix != "" {
			add(d.errorf(ns.child("prefix"), "only allowed with mode Prefix"))
		}
	case NamespaceModePrefix:
		p := c.Spec.Namespaces.Prefix
		switch {
		case p == "":
			add(d.errorf(ns.child("prefix"), "required with mode Prefix"))
		case len(p) > MaxNamespacePrefix:
			add(d.errorf(ns.child("prefix"), "prefix %q is longer than %d characters", p, MaxNamespacePrefix))
		case !namespacePrefixRE.MatchString(p):
			add(d.errorf(ns.child("prefix"), "invalid prefix %q: lower-case letters, digits and '-', starting with a letter or digit", p))
		case strings.HasPrefix(p, reservedNamespacePrefix) || strings.HasPrefix(reservedNamespacePrefix, p):
			add(d.errorf(ns.child("prefix"), "prefix %q would name namespaces starting with %q, which a cluster keeps for its own components", p, reservedNamespacePrefix))
		}
	default:
		add(d.errorf(ns.child("mode"), "unsupported value %q: want %s or %s", c.Spec.Namespaces.Mode, NamespaceModeSame, NamespaceModePrefix))
	}
	for i, r := range c.Spec.Namespaces.RestrictTo {
		at := ns.child("restrictTo").index(i)
		switch {
		case len(validation.IsDNS1123Label(r)) > 0:
			add(d.errorf(at, "invalid namespace %q: %s", r, validation.IsDNS1123Label(r)[0]))
		case strings.HasPrefix(r, reservedNamespacePrefix):
			add(d.errorf(at, "namespace %q: namespaces starting with %q are the cluster's own components'", r, reservedNamespacePrefix))
		case c.Spec.Namespaces.Mode == NamespaceModePrefix && !strings.HasPrefix(r, c.Spec.Namespaces.Prefix):
			add(d.errorf(at, "namespace %q does not start with the prefix %q: no pod would land there", r, c.Spec.Namespaces.Prefix))
		case slices.Contains(c.Spec.Namespaces.RestrictTo[:i], r):
			add(d.errorf(at, "namespace %q listed twice", r))
		}
	}
}

func modeName(m Mode) string {
	if m == "" {
		return string(ModeGit)
	}
	return string(m)
}

func validateNodeTemplate(d *document, path fieldPath, n *NodeTemplate, add func(*FieldError)) {
	validateLabels(d, path.child("labels"), n.Labels, true, add)
	type keyEffect struct {
		key    string
		effect TaintEffect
	}
	seen := make(map[keyEffect]int, len(n.Taints))
	for i, t := range n.Taints {
		tp := path.child("taints").index(i)
		if t.Key == "" {
			add(d.errorf(tp.child("key"), "required"))
		} else {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				add(d.errorf(tp.child("key"), "invalid taint key %q: %s", t.Key, msg))
			}
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			add(d.errorf(tp.child("value"), "invalid taint value %q: %s", t.Value, msg))
		}
		switch t.Effect {
		case TaintEffectNoSchedule, TaintEffectPreferNoSchedule, TaintEffectNoExecute:
		case "":
			add(d.errorf(tp.child("effect"), "required: NoSchedule, PreferNoSchedule or NoExecute"))
		default:
			add(d.errorf(tp.child("effect"), "unsupported value %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect))
		}
		ke := keyEffect{t.Key, t.Effect}
		if j, dup := seen[ke]; dup {
			add(d.errorf(tp, "duplicate taint %s:%s (also at taints[%d])", t.Key, t.Effect, j))
		} else {
			seen[ke] = i
		}
	}
	cp := path.child("capacity")
	for _, r := range capacityResources(&n.Capacity) {
		if r.q == nil {
			continue
		}
		if r.q.Sign() <= 0 {
			add(d.errorf(cp.child(r.name), "must be positive, got %s", quantityString(r.q)))
		} else if r.name == "pods" && r.q.MilliValue()%1000 != 0 {
			add(d.errorf(cp.child(r.name), "must be a whole number, got %s", quantityString(r.q)))
		}
	}
}

func validatePolicySpec(p *PlacementPolicy, add func(*FieldError)) {
	d := p.doc
	spec := fieldPath{}.child("spec")
	if p.Spec.ClusterSelector == nil {
		add(d.errorf(spec.child("clusterSelector"), "required (use {} to pick every cluster)"))
	} else {
		for _, e := range selectorErrors(p.Spec.ClusterSelector) {
			add(d.errorf(spec.child("clusterSelector").append(e.path...), "%s", e.msg))
		}
	}
	validateNodeTemplate(d, spec.child("node"), &p.Spec.Node, add)
	if t := p.Spec.TolerateIn; t != nil {
		tp := spec.child("tolerateIn")
		for _, e := range selectorErrors(&t.NamespaceSelector) {
			add(d.errorf(tp.child("namespaceSelector").append(e.path...), "%s", e.msg))
		}
	}
}

func (p fieldPath) append(elems ...pathElem) fieldPath {
	return append(p[:len(p):len(p)], elems...)
}

type selectorError struct {
	path fieldPath
	msg  string
}

// selectorErrors checks a label selector's syntax.
func selectorErrors(s *LabelSelector) []selectorError {
	var out []selectorError
	for _, k := range sortedKeys(s.MatchLabels) {
		p := fieldPath{}.child("matchLabels").key(k)
		for _, msg := range validation.IsQualifiedName(k) {
			out = append(out, selectorError{p, fmt.Sprintf("invalid label key %q: %s", k, msg)})
		}
		for _, msg := range validation.IsValidLabelValue(s.MatchLabels[k]) {
			out = append(out, selectorError{p, fmt.Sprintf("invalid label value %q: %s", s.MatchLabels[k], msg)})
		}
	}
	for i, r := range s.MatchExpressions {
		p := fieldPath{}.child("matchExpressions").index(i)
		if _, err := selectorRequirement(r); err != nil {
			out = append(out, selectorError{p, err.Error()})
		}
	}
	return out
}

var selectorOps = map[string]selection.Operator{
	"In":           selection.In,
	"NotIn":        selection.NotIn,
	"Exists":       selection.Exists,
	"DoesNotExist": selection.DoesNotExist,
}

func selectorRequirement(r LabelSelectorRequirement) (*labels.Requirement, error) {
	op, ok := selectorOps[r.Operator]
	if !ok {
		return nil, fmt.Errorf("unsupported operator %q: want In, NotIn, Exists or DoesNotExist", r.Operator)
	}
	req, err := labels.NewRequirement(r.Key, op, r.Values)
	if err != nil {
		return nil, fmt.Errorf("invalid requirement: %w", err)
	}
	return req, nil
}

// toSelector converts a (validated) LabelSelector; an empty selector
// selects everything, like metav1.LabelSelectorAsSelector.
func toSelector(s *LabelSelector) (labels.Selector, error) {
	sel := labels.NewSelector()
	for _, k := range sortedKeys(s.MatchLabels) {
		req, err := labels.NewRequirement(k, selection.Equals, []string{s.MatchLabels[k]})
		if err != nil {
			return nil, fmt.Errorf("matchLabels: %w", err)
		}
		sel = sel.Add(*req)
	}
	for _, r := range s.MatchExpressions {
		req, err := selectorRequirement(r)
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*req)
	}
	return sel, nil
}
