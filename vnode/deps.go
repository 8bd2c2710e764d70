package vnode

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// DependencyKind is the kind of object a pod depends on.
type DependencyKind string

// The dependency kinds Atoll copies to the remote.
const (
	KindConfigMap DependencyKind = "ConfigMap"
	KindSecret    DependencyKind = "Secret"
)

// Dependency is a ConfigMap or Secret a pod references, in the pod's namespace.
type Dependency struct {
	Kind DependencyKind
	Name string
	// Optional is true only when every reference to the object is optional.
	Optional bool
}

// PodDependencies returns the ConfigMaps and Secrets a pod references through
// volumes, projected volumes, env, envFrom and imagePullSecrets, sorted by
// kind and name.
func PodDependencies(pod *corev1.Pod) []Dependency {
	type key struct {
		kind DependencyKind
		name string
	}
	required := map[key]bool{}
	add := func(kind DependencyKind, name string, optional *bool) {
		// Every namespace of every cluster has its own kube-root-ca.crt:
		// the remote's is the right one there.
		if name == "" || (kind == KindConfigMap && name == rootCAConfigMap) {
			return
		}
		k := key{kind, name}
		req := optional == nil || !*optional
		required[k] = required[k] || req
	}
	for _, v := range pod.Spec.Volumes {
		if isServiceAccountTokenVolume(v) {
			continue // not copied: the remote's admission adds its own
		}
		switch {
		case v.ConfigMap != nil:
			add(KindConfigMap, v.ConfigMap.Name, v.ConfigMap.Optional)
		case v.Secret != nil:
			add(KindSecret, v.Secret.SecretName, v.Secret.Optional)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(KindConfigMap, s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					add(KindSecret, s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add(KindConfigMap, e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
			}
			if e.SecretRef != nil {
				add(KindSecret, e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(KindConfigMap, r.Name, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(KindSecret, r.Name, r.Optional)
			}
		}
	}
	// A missing pull secret does not stop a kubelet from starting a pod.
	t := true
	for _, s := range pod.Spec.ImagePullSecrets {
		add(KindSecret, s.Name, &t)
	}
	out := make([]Dependency, 0, len(required))
	for k, req := range required {
		out = append(out, Dependency{Kind: k.kind, Name: k.name, Optional: !req})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// rootCAConfigMap is published into every namespace by each cluster.
const rootCAConfigMap = "kube-root-ca.crt"

// dependencyIndexKeys are the index keys of a pod's dependencies, used to find
// the pods of a node using a ConfigMap or Secret.
func dependencyIndexKeys(pod *corev1.Pod) []string {
	deps := PodDependencies(pod)
	keys := make([]string, 0, len(deps))
	for _, d := range deps {
		keys = append(keys, nodeDepKey(pod.Spec.NodeName, d.Kind, pod.Namespace, d.Name))
	}
	return keys
}

func nodeDepKey(node string, kind DependencyKind, namespace, name string) string {
	return node + "/" + string(kind) + "/" + namespace + "/" + name
}

// ErrMissingDependency is returned (wrapped in *MissingDependencyError) when
// a required ConfigMap or Secret does not exist in the master.
var ErrMissingDependency = errors.New("missing dependency")

// MissingDependencyError names the missing required object.
type MissingDependencyError struct {
	Kind      DependencyKind
	Namespace string
	Name      string
}

func (e *MissingDependencyError) Error() string {
	return fmt.Sprintf("%s %q not found", lowerKind(e.Kind), e.Namespace+"/"+e.Name)
}

// Is makes errors.Is(err, ErrMissingDependency) true.
func (e *MissingDependencyError) Is(target error) bool { return target == ErrMissingDependency }

func lowerKind(k DependencyKind) string {
	if k == KindSecret {
		return "secret"
	}
	return "configmap"
}

// ErrNameConflict is returned when a remote object of the same name exists
// and is not owned by this master and node; it is never changed.
var ErrNameConflict = errors.New("name conflict with a foreign remote object")

// ownedBy reports whether a remote object carries this master's and node's labels.
func ownedBy(meta metav1.Object, masterID, nodeName string) bool {
	l := meta.GetLabels()
	return l[LabelMaster] == masterID && l[LabelNode] == nodeName
}

// ownedSelector selects the remote objects of this master and node.
func ownedSelector(masterID, nodeName string) string {
	return labels.SelectorFromSet(labels.Set{LabelMaster: masterID, LabelNode: nodeName}).String()
}

// managedNamespaceLabels are the labels of a remote namespace Atoll
// created for this master and node. (Namespaces an Atoll of before
// LabelNode was set on them lack it: they are never deleted.)
func managedNamespaceLabels(masterID, nodeName string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelMaster: masterID, LabelNode: nodeName}
}

// remoteConfigMap returns the remote copy of a master ConfigMap.
func remoteConfigMap(cm *corev1.ConfigMap, ns NamespaceMapping, masterID, nodeName string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: copyMeta(&cm.ObjectMeta, ns, masterID, nodeName),
		Data:       maps.Clone(cm.Data),
		BinaryData: maps.Clone(cm.BinaryData),
		Immutable:  cm.Immutable,
	}
}

// remoteSecret returns the remote copy of a master Secret.
func remoteSecret(s *corev1.Secret, ns NamespaceMapping, masterID, nodeName string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: copyMeta(&s.ObjectMeta, ns, masterID, nodeName),
		Data:       maps.Clone(s.Data),
		Type:       s.Type,
		Immutable:  s.Immutable,
	}
}

func copyMeta(m *metav1.ObjectMeta, ns NamespaceMapping, masterID, nodeName string) metav1.ObjectMeta {
	labels := maps.Clone(m.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelOriginUID] = string(m.UID)
	labels[LabelMaster] = masterID
	labels[LabelNode] = nodeName
	return metav1.ObjectMeta{
		Name:      m.Name,
		Namespace: ns.Remote(m.Namespace),
		Labels:    labels,
	}
}

// syncDependency makes the remote copy of one master ConfigMap or Secret
// match the master: created, updated, or deleted when the master object is
// gone or no pod of this node uses it. A foreign object of the same name is
// never touched (ErrNameConflict). Nothing is copied to a namespace outside
// the node's scope: no pod of it goes there.
func (v *VirtualNode) syncDependency(ctx context.Context, kind DependencyKind, namespace, name string) error {
	remoteNS := v.ns.Remote(namespace)
	if !v.remote.scope.serves(remoteNS) {
		return nil
	}
	used := v.dependencyUsed(kind, namespace, name)
	switch kind {
	case KindConfigMap:
		var master *corev1.ConfigMap
		if used {
			m, err := v.master.deps.configMap(namespace, name)
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			master = m
		}
		remote, _ := getAs[*corev1.ConfigMap](v.remote.configMaps, remoteNS, name)
		if master == nil {
			if remote == nil {
				return nil
			}
			return v.deleteRemoteObject(ctx, KindConfigMap, remote)
		}
		want := remoteConfigMap(master, v.ns, v.masterID, v.name)
		return v.applyRemoteObject(ctx, KindConfigMap, want, remote)
	case KindSecret:
		var master *corev1.Secret
		if used {
			m, err := v.master.deps.secret(namespace, name)
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			master = m
		}
		remote, _ := getAs[*corev1.Secret](v.remote.secrets, remoteNS, name)
		if master == nil {
			if remote == nil {
				return nil
			}
			return v.deleteRemoteObject(ctx, KindSecret, remote)
		}
		want := remoteSecret(master, v.ns, v.masterID, v.name)
		return v.applyRemoteObject(ctx, KindSecret, want, remote)
	}
	return fmt.Errorf("sync dependency: unknown kind %q", kind)
}

// dependencyUsed reports whether a non-terminated master pod on this node
// references the object.
func (v *VirtualNode) dependencyUsed(kind DependencyKind, namespace, name string) bool {
	return len(v.master.pods.users(kind, namespace, name)) > 0
}

// ensureDependencies copies every dependency of a master pod to the remote
// before the pod is created. A missing optional object is skipped; a missing
// required one is a *MissingDependencyError; one of a namespace Atoll may not
// read is a *DependencyAccessError.
func (v *VirtualNode) ensureDependencies(ctx context.Context, pod *corev1.Pod) error {
	for _, d := range PodDependencies(pod) {
		var err error
		switch d.Kind {
		case KindConfigMap:
			_, err = v.master.deps.configMap(pod.Namespace, d.Name)
		case KindSecret:
			_, err = v.master.deps.secret(pod.Namespace, d.Name)
		}
		switch {
		case apierrors.IsNotFound(err) && d.Optional:
			continue
		case apierrors.IsNotFound(err):
			return &MissingDependencyError{Kind: d.Kind, Namespace: pod.Namespace, Name: d.Name}
		case err != nil:
			// Not known, not even whether an optional one exists.
			return err
		}
		if err := v.syncDependency(ctx, d.Kind, pod.Namespace, d.Name); err != nil {
			return fmt.Errorf("copy %s %s/%s: %w", lowerKind(d.Kind), pod.Namespace, d.Name, err)
		}
	}
	return nil
}

// applyRemoteObject creates want, or updates current to want when they
// differ. current may be nil (not in the cache); a create that finds an
// existing object falls back to a fresh read and the ownership check.
func (v *VirtualNode) applyRemoteObject(ctx context.Context, kind DependencyKind, want, current runtime.Object) error {
	wantMeta, _ := want.(metav1.Object)
	if err := v.ensureNamespace(ctx, wantMeta.GetNamespace()); err != nil {
		return err
	}
	t := v.cfg.RequestTimeout
	ns := wantMeta.GetNamespace()
	if isNilObject(current) {
		err := withTimeout(ctx, t, func(c context.Context) (err error) {
			switch kind {
			case KindConfigMap:
				_, err = v.remote.client.CoreV1().ConfigMaps(ns).Create(c, want.(*corev1.ConfigMap), metav1.CreateOptions{})
			case KindSecret:
				_, err = v.remote.client.CoreV1().Secrets(ns).Create(c, want.(*corev1.Secret), metav1.CreateOptions{})
			}
			return err
		})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		err = withTimeout(ctx, t, func(c context.Context) (err error) {
			switch kind {
			case KindConfigMap:
				current, err = v.remote.client.CoreV1().ConfigMaps(ns).Get(c, wantMeta.GetName(), metav1.GetOptions{})
			case KindSecret:
				current, err = v.remote.client.CoreV1().Secrets(ns).Get(c, wantMeta.GetName(), metav1.GetOptions{})
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	curMeta, _ := current.(metav1.Object)
	if !ownedBy(curMeta, v.masterID, v.name) {
		return fmt.Errorf("%s %s/%s: %w", lowerKind(kind), curMeta.GetNamespace(), curMeta.GetName(), ErrNameConflict)
	}
	var err error
	switch kind {
	case KindConfigMap:
		w, c := want.(*corev1.ConfigMap), current.(*corev1.ConfigMap)
		if maps.Equal(w.Data, c.Data) && bytesMapsEqual(w.BinaryData, c.BinaryData) && maps.Equal(w.Labels, c.Labels) {
			return nil
		}
		if c.Immutable != nil && *c.Immutable {
			return v.deleteRemoteObject(ctx, kind, c) // recreated on the next pass
		}
		u := c.DeepCopy()
		u.Data, u.BinaryData, u.Labels, u.Immutable = w.Data, w.BinaryData, w.Labels, w.Immutable
		err = withTimeout(ctx, t, func(c context.Context) error {
			_, err := v.remote.client.CoreV1().ConfigMaps(u.Namespace).Update(c, u, metav1.UpdateOptions{})
			return err
		})
	case KindSecret:
		w, c := want.(*corev1.Secret), current.(*corev1.Secret)
		if bytesMapsEqual(w.Data, c.Data) && maps.Equal(w.Labels, c.Labels) && w.Type == c.Type {
			return nil
		}
		if (c.Immutable != nil && *c.Immutable) || w.Type != c.Type {
			return v.deleteRemoteObject(ctx, kind, c)
		}
		u := c.DeepCopy()
		u.Data, u.Labels, u.Immutable = w.Data, w.Labels, w.Immutable
		u.StringData = nil
		err = withTimeout(ctx, t, func(c context.Context) error {
			_, err := v.remote.client.CoreV1().Secrets(u.Namespace).Update(c, u, metav1.UpdateOptions{})
			return err
		})
	}
	return err
}

// deleteRemoteObject deletes a remote ConfigMap or Secret this node owns.
func (v *VirtualNode) deleteRemoteObject(ctx context.Context, kind DependencyKind, obj metav1.Object) error {
	if !ownedBy(obj, v.masterID, v.name) {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	opts := metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(obj.GetUID()))}
	var err error
	switch kind {
	case KindConfigMap:
		err = v.remote.client.CoreV1().ConfigMaps(obj.GetNamespace()).Delete(cctx, obj.GetName(), opts)
	case KindSecret:
		err = v.remote.client.CoreV1().Secrets(obj.GetNamespace()).Delete(cctx, obj.GetName(), opts)
	}
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err == nil {
		v.log.Debug("deleted remote copy", "kind", kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	return err
}

func bytesMapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || string(va) != string(vb) {
			return false
		}
	}
	return true
}

func isNilObject(o runtime.Object) bool {
	switch t := o.(type) {
	case nil:
		return true
	case *corev1.ConfigMap:
		return t == nil
	case *corev1.Secret:
		return t == nil
	}
	return false
}
