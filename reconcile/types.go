package reconcile

import (
	"k8s.io/apimachinery/pkg/api/resource"
)

// API group, version and kinds of the fleet repository's declarations.
const (
	APIVersion          = "atoll.dev/v1alpha1"
	KindCluster         = "Cluster"
	KindPlacementPolicy = "PlacementPolicy"
)

// Cluster declares one remote cluster; it becomes one virtual node in the
// master cluster, named like the Cluster.
type Cluster struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ObjectMeta  `json:"metadata"`
	Spec       ClusterSpec `json:"spec"`

	doc *document // where it was declared; nil when built in code
}

// ObjectMeta is the subset of Kubernetes object metadata a declaration
// carries. Labels are what PlacementPolicy selectors match. Namespace is
// accepted (kustomize's namespace transformer adds it) and ignored.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ClusterSpec says how to reach the remote and how its virtual node looks.
type ClusterSpec struct {
	Credentials Credentials     `json:"credentials"`
	Node        NodeTemplate    `json:"node,omitempty"`
	Namespaces  NamespacePolicy `json:"namespaces,omitempty"`
	// Cordon marks the node unschedulable; running pods stay.
	Cordon bool `json:"cordon,omitempty"`
	// ProviderTaint false leaves ProviderTaint off the node, so that any
	// pod may be scheduled there (default true).
	ProviderTaint *bool `json:"providerTaint,omitempty"`
}

// Credentials locate the remote's kubeconfig. Exactly one of SecretRef and
// Path is set. Path is allowed in watch mode only; a relative Path is
// resolved against the fleet path (see Credentials.Resolve).
type Credentials struct {
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
	Path      string        `json:"path,omitempty"`
}

// SecretKeyRef names a key of a Secret in Atoll's own namespace.
type SecretKeyRef struct {
	Name string `json:"name"`
	// Key defaults to DefaultSecretKey.
	Key string `json:"key,omitempty"`
}

// DefaultSecretKey is the Secret key read when secretRef.key is omitted.
const DefaultSecretKey = "kubeconfig"

// NodeTemplate is what a Cluster or a PlacementPolicy contributes to a
// virtual node.
type NodeTemplate struct {
	Labels   map[string]string `json:"labels,omitempty"`
	Taints   []Taint           `json:"taints,omitempty"`
	Capacity Capacity          `json:"capacity,omitempty"`
}

// Taint is a node taint (the Kubernetes core/v1 Taint without timeAdded).
type Taint struct {
	Key    string      `json:"key"`
	Value  string      `json:"value,omitempty"`
	Effect TaintEffect `json:"effect"`
}

// String renders the taint like kubectl does: key=value:Effect.
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + string(t.Effect)
	}
	return t.Key + "=" + t.Value + ":" + string(t.Effect)
}

// TaintEffect is one of the Kubernetes taint effects.
type TaintEffect string

// The taint effects Kubernetes knows.
const (
	TaintEffectNoSchedule       TaintEffect = "NoSchedule"
	TaintEffectPreferNoSchedule TaintEffect = "PreferNoSchedule"
	TaintEffectNoExecute        TaintEffect = "NoExecute"
)

// Capacity caps what the virtual node advertises. A nil field is no cap:
// the node advertises what the remote has allocatable.
type Capacity struct {
	CPU    *resource.Quantity `json:"cpu,omitempty"`
	Memory *resource.Quantity `json:"memory,omitempty"`
	Pods   *resource.Quantity `json:"pods,omitempty"`
}

// NamespaceMode says where a pod's namespace lands in the remote.
type NamespaceMode string

// The namespace modes.
const (
	// NamespaceModeSame keeps the master's namespace name (the default).
	NamespaceModeSame NamespaceMode = "Same"
	// NamespaceModePrefix prepends NamespacePolicy.Prefix.
	NamespaceModePrefix NamespaceMode = "Prefix"
)

// NamespacePolicy maps master namespaces to remote namespaces.
type NamespacePolicy struct {
	Mode   NamespaceMode `json:"mode,omitempty"`
	Prefix string        `json:"prefix,omitempty"`
	// RestrictTo, when set, lists the remote namespaces Atoll may use, all
	// of which exist: its remote identity then needs Roles in them only
	// (deploy/remote-namespaced, `atoll cluster add --namespaces`). Atoll
	// creates no namespace and reads no remote Node there; the node's
	// capacity comes from the namespaces' ResourceQuotas, and a pod whose
	// namespace maps elsewhere is not delegated.
	RestrictTo []string `json:"restrictTo,omitempty"`
}

// PlacementPolicy adds labels, taints and capacity caps to every cluster
// its selector picks, and may ask for automatic tolerations.
type PlacementPolicy struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Metadata   ObjectMeta          `json:"metadata"`
	Spec       PlacementPolicySpec `json:"spec"`

	doc *document
}

// PlacementPolicySpec is the body of a PlacementPolicy.
type PlacementPolicySpec struct {
	// ClusterSelector picks Clusters by their metadata.labels. Required;
	// an empty selector ({}) picks every cluster.
	ClusterSelector *LabelSelector `json:"clusterSelector"`
	Node            NodeTemplate   `json:"node,omitempty"`
	TolerateIn      *TolerateIn    `json:"tolerateIn,omitempty"`
}

// TolerateIn asks the admission webhook to add tolerations for the
// policy's taints to pods in the selected namespaces.
type TolerateIn struct {
	NamespaceSelector LabelSelector `json:"namespaceSelector"`
}

// LabelSelector is the Kubernetes label selector (metav1.LabelSelector).
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one expression of a LabelSelector; Operator
// is In, NotIn, Exists or DoesNotExist.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Mode says where declarations come from; it decides which credentials
// are allowed.
type Mode string

// The source modes.
const (
	// ModeGit: declarations from a git repository; credentials must be a
	// secretRef (credentials never live in git).
	ModeGit Mode = "git"
	// ModeWatch: declarations from a local directory; credentials may
	// also be a path to a kubeconfig file.
	ModeWatch Mode = "watch"
)

// Fleet is the decoded content of one revision of a fleet repository.
type Fleet struct {
	Clusters []*Cluster
	Policies []*PlacementPolicy
}
