package vnode

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations Atoll puts on the objects it owns in a remote cluster.
// Only objects carrying LabelMaster with this master's identity are ever changed.
const (
	// LabelOriginUID is the UID of the master object a remote copy stands for.
	LabelOriginUID = "atoll.dev/origin-uid"
	// LabelNode is the virtual node a remote copy belongs to.
	LabelNode = "atoll.dev/node"
	// LabelMaster is the identity of the master cluster that owns a remote copy.
	LabelMaster = "atoll.dev/master"
	// LabelManaged marks a remote namespace Atoll created; its LabelMaster
	// and LabelNode say for which master and node. Once that node is
	// removed, the namespace is deleted if it holds nothing else.
	LabelManaged = "atoll.dev/managed"
	// LabelCluster is put on the virtual node: the name of the remote cluster.
	LabelCluster = "atoll.dev/cluster"
	// AnnotationCopiedKeys lists, on a remote pod copy, the label and
	// annotation keys Atoll copied from the master pod (JSON, copiedKeys),
	// so that one the master pod drops is dropped from the copy as well,
	// while the keys the remote added stay.
	AnnotationCopiedKeys = "atoll.dev/copied-keys"
)

// copiedKeys is the content of AnnotationCopiedKeys.
type copiedKeys struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
}

// copiedKeysOf reads AnnotationCopiedKeys of a remote pod; a copy without
// it (nothing copied, or made before Atoll recorded the keys) gives none,
// so nothing is dropped.
func copiedKeysOf(remote *corev1.Pod) copiedKeys {
	var k copiedKeys
	if a := remote.Annotations[AnnotationCopiedKeys]; a != "" {
		_ = json.Unmarshal([]byte(a), &k)
	}
	return k
}

// NamespaceMode says how master namespaces map to remote namespaces.
type NamespaceMode string

const (
	// NamespaceSame keeps the master namespace name (the default).
	NamespaceSame NamespaceMode = "Same"
	// NamespacePrefix prepends NodeSpec.NamespacePrefix to the master namespace.
	NamespacePrefix NamespaceMode = "Prefix"
)

// NamespaceMapping maps master namespaces to remote ones and back.
type NamespaceMapping struct {
	Mode   NamespaceMode
	Prefix string
}

// Remote returns the remote namespace for a master namespace.
func (m NamespaceMapping) Remote(masterNamespace string) string {
	if m.Mode == NamespacePrefix {
		return m.Prefix + masterNamespace
	}
	return masterNamespace
}

// Master returns the master namespace of a remote namespace, and false when
// the remote namespace cannot belong to this mapping.
func (m NamespaceMapping) Master(remoteNamespace string) (string, bool) {
	if m.Mode == NamespacePrefix {
		if !strings.HasPrefix(remoteNamespace, m.Prefix) {
			return "", false
		}
		return strings.TrimPrefix(remoteNamespace, m.Prefix), true
	}
	return remoteNamespace, true
}

// TranslateOptions is what TranslatePod needs to know about both sides.
type TranslateOptions struct {
	// NodeName is the virtual node's name.
	NodeName string
	// MasterID identifies this master (value of LabelMaster).
	MasterID string
	// Namespaces maps the master namespace to the remote one.
	Namespaces NamespaceMapping
	// NodeLabels are the virtual node's labels: node selector and affinity
	// terms on these keys only targeted the virtual node and are dropped.
	NodeLabels map[string]string
	// NodeTaints are the virtual node's taints: tolerations for them are dropped.
	NodeTaints []corev1.Taint
	// ServiceAccountExists reports whether a service account exists in the
	// remote namespace. Nil means only "default" is assumed to exist.
	ServiceAccountExists func(namespace, name string) bool
}

// virtualNodeTaintKeys are taint keys that only ever target virtual nodes.
var virtualNodeTaintKeys = map[string]bool{
	"virtual-kubelet.io/provider": true,
}

// TranslatePod returns the remote pod for a master pod. It is a pure
// function: the same input always gives the same output, and pod is not
// changed.
func TranslatePod(pod *corev1.Pod, opts TranslateOptions) (*corev1.Pod, error) {
	if pod == nil {
		return nil, fmt.Errorf("translate pod: nil pod")
	}
	if pod.UID == "" {
		return nil, fmt.Errorf("translate pod %s/%s: no UID", pod.Namespace, pod.Name)
	}
	if opts.NodeName == "" || opts.MasterID == "" {
		return nil, fmt.Errorf("translate pod %s/%s: node name and master ID are required", pod.Namespace, pod.Name)
	}
	in := pod.DeepCopy()
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      in.Name,
			Namespace: opts.Namespaces.Remote(in.Namespace),
			Labels:    map[string]string{},
		},
		Spec: in.Spec,
	}
	var keys copiedKeys
	for k, v := range in.Labels {
		switch k {
		case LabelOriginUID, LabelNode, LabelMaster:
			continue // Atoll's own, set below
		}
		out.Labels[k] = v
		keys.Labels = append(keys.Labels, k)
	}
	for k, v := range in.Annotations {
		if k == corev1.LastAppliedConfigAnnotation || k == AnnotationCopiedKeys {
			continue
		}
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[k] = v
		keys.Annotations = append(keys.Annotations, k)
	}
	// No record says what no copied key says: nothing to drop.
	if len(keys.Labels)+len(keys.Annotations) > 0 {
		slices.Sort(keys.Labels)
		slices.Sort(keys.Annotations)
		record, _ := json.Marshal(keys)
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[AnnotationCopiedKeys] = string(record)
	}
	out.Labels[LabelOriginUID] = string(in.UID)
	out.Labels[LabelNode] = opts.NodeName
	out.Labels[LabelMaster] = opts.MasterID

	spec := &out.Spec
	spec.NodeName = ""
	// Priority and preemption policy are filled in by the remote's admission
	// from the priority class; a value set here would be refused.
	spec.Priority = nil
	spec.PreemptionPolicy = nil
	// Overhead comes from the remote's RuntimeClass admission; one set here
	// without (or unlike) the remote's RuntimeClass would be refused.
	spec.Overhead = nil
	spec.Tolerations = translateTolerations(spec.Tolerations, opts.NodeTaints)
	spec.NodeSelector = translateNodeSelector(spec.NodeSelector, opts.NodeLabels)
	spec.Affinity = translateAffinity(spec.Affinity, opts.NodeLabels)
	dropServiceAccountToken(spec)
	spec.ServiceAccountName = remoteServiceAccount(spec.ServiceAccountName, out.Namespace, opts.ServiceAccountExists)
	spec.DeprecatedServiceAccount = spec.ServiceAccountName //nolint:staticcheck // kept consistent with ServiceAccountName
	// Ephemeral containers cannot be set on create.
	spec.EphemeralContainers = nil
	return out, nil
}

func translateTolerations(in []corev1.Toleration, taints []corev1.Taint) []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range in {
		if t.Key != "" && virtualNodeTaintKeys[t.Key] {
			continue
		}
		if t.Key != "" && tolerationTargetsTaints(t, taints) {
			continue
		}
		out = append(out, t)
	}
	return out
}

func tolerationTargetsTaints(t corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		if taints[i].Key == t.Key {
			return true
		}
	}
	return false
}

func translateNodeSelector(in map[string]string, nodeLabels map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if _, ok := nodeLabels[k]; ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

func keepRequirements(in []corev1.NodeSelectorRequirement, nodeLabels map[string]string) []corev1.NodeSelectorRequirement {
	var out []corev1.NodeSelectorRequirement
	for _, r := range in {
		if _, ok := nodeLabels[r.Key]; ok {
			continue
		}
		out = append(out, r)
	}
	return out
}

// translateAffinity drops node-affinity requirements on the virtual node's
// label keys and on its name (matchFields). A required term left empty was
// satisfied by the virtual node alone, so the required node affinity as a
// whole is dropped; pod (anti-)affinity is kept as written.
func translateAffinity(in *corev1.Affinity, nodeLabels map[string]string) *corev1.Affinity {
	if in == nil || in.NodeAffinity == nil {
		return in
	}
	na := in.NodeAffinity
	out := &corev1.NodeAffinity{}
	if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
		var terms []corev1.NodeSelectorTerm
		satisfied := false
		for _, term := range req.NodeSelectorTerms {
			exprs := keepRequirements(term.MatchExpressions, nodeLabels)
			fields := keepFieldRequirements(term.MatchFields)
			if len(exprs) == 0 && len(fields) == 0 {
				satisfied = len(term.MatchExpressions) > 0 || len(term.MatchFields) > 0
				if satisfied {
					break
				}
				continue
			}
			terms = append(terms, corev1.NodeSelectorTerm{MatchExpressions: exprs, MatchFields: fields})
		}
		if !satisfied && len(terms) > 0 {
			out.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: terms}
		}
	}
	for _, p := range na.PreferredDuringSchedulingIgnoredDuringExecution {
		exprs := keepRequirements(p.Preference.MatchExpressions, nodeLabels)
		fields := keepFieldRequirements(p.Preference.MatchFields)
		if len(exprs) == 0 && len(fields) == 0 {
			continue
		}
		out.PreferredDuringSchedulingIgnoredDuringExecution = append(out.PreferredDuringSchedulingIgnoredDuringExecution,
			corev1.PreferredSchedulingTerm{Weight: p.Weight, Preference: corev1.NodeSelectorTerm{MatchExpressions: exprs, MatchFields: fields}})
	}
	res := &corev1.Affinity{PodAffinity: in.PodAffinity, PodAntiAffinity: in.PodAntiAffinity}
	if out.RequiredDuringSchedulingIgnoredDuringExecution != nil || len(out.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		res.NodeAffinity = out
	}
	if res.NodeAffinity == nil && res.PodAffinity == nil && res.PodAntiAffinity == nil {
		return nil
	}
	return res
}

// keepFieldRequirements drops metadata.name requirements: they name the
// virtual node (DaemonSet-style pinning).
func keepFieldRequirements(in []corev1.NodeSelectorRequirement) []corev1.NodeSelectorRequirement {
	var out []corev1.NodeSelectorRequirement
	for _, r := range in {
		if r.Key == "metadata.name" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// isServiceAccountTokenVolume reports whether v is the projected token volume
// the master's ServiceAccount admission added (kube-api-access-*).
func isServiceAccountTokenVolume(v corev1.Volume) bool {
	if !strings.HasPrefix(v.Name, "kube-api-access-") || v.Projected == nil {
		return false
	}
	for _, s := range v.Projected.Sources {
		if s.ServiceAccountToken != nil {
			return true
		}
	}
	return false
}

// dropServiceAccountToken removes the master's token volume and its mounts;
// the remote's admission adds the remote's own.
func dropServiceAccountToken(spec *corev1.PodSpec) {
	drop := map[string]bool{}
	var vols []corev1.Volume
	for _, v := range spec.Volumes {
		if isServiceAccountTokenVolume(v) {
			drop[v.Name] = true
			continue
		}
		vols = append(vols, v)
	}
	if len(drop) == 0 {
		return
	}
	spec.Volumes = vols
	strip := func(cs []corev1.Container) {
		for i := range cs {
			var mounts []corev1.VolumeMount
			for _, m := range cs[i].VolumeMounts {
				if !drop[m.Name] {
					mounts = append(mounts, m)
				}
			}
			cs[i].VolumeMounts = mounts
		}
	}
	strip(spec.InitContainers)
	strip(spec.Containers)
}

func remoteServiceAccount(name, remoteNamespace string, exists func(namespace, name string) bool) string {
	if name == "" || name == "default" {
		return "default"
	}
	if exists != nil && exists(remoteNamespace, name) {
		return name
	}
	return "default"
}
