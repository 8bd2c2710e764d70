package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/vnode"
)

// managerNodes is the reconciler's NodeSet on a vnode.Manager: it turns a
// declared node into a vnode.NodeSpec, reading the credentials from a
// Secret in Atoll's namespace or (watch mode) from a kubeconfig file.
type managerNodes struct {
	m         *vnode.Manager
	master    kubernetes.Interface
	namespace string
	timeout   time.Duration
}

var _ reconcile.NodeSet = (*managerNodes)(nil)

func (n *managerNodes) Add(ctx context.Context, spec reconcile.NodeSpec) error {
	vs, err := n.vnodeSpec(ctx, spec)
	if err != nil {
		return err
	}
	err = n.m.Add(vs)
	if errors.Is(err, vnode.ErrNodeExists) {
		return n.m.Update(vs)
	}
	return err
}

func (n *managerNodes) Update(ctx context.Context, spec reconcile.NodeSpec) error {
	vs, err := n.vnodeSpec(ctx, spec)
	if err != nil {
		return err
	}
	err = n.m.Update(vs)
	if errors.Is(err, vnode.ErrNodeNotFound) {
		return n.m.Add(vs)
	}
	return err
}

func (n *managerNodes) Remove(ctx context.Context, name string) error {
	err := n.m.Remove(ctx, name)
	if !errors.Is(err, vnode.ErrNodeNotFound) {
		return err
	}
	// Not run by this process: delete what an earlier one left.
	cctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if err := n.master.CoreV1().Nodes().Delete(cctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	err = n.master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(cctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node lease %s: %w", name, err)
	}
	return nil
}

func (n *managerNodes) List() []reconcile.NodeState {
	hs := n.m.Health()
	out := make([]reconcile.NodeState, len(hs))
	for i, h := range hs {
		out[i] = reconcile.NodeState{Name: h.Name, Ready: h.Ready, Reason: h.Reason, DelegatedPods: h.DelegatedPods, LastError: h.LastError}
	}
	return out
}

// vnodeSpec converts a declared node, reading its credentials.
func (n *managerNodes) vnodeSpec(ctx context.Context, spec reconcile.NodeSpec) (vnode.NodeSpec, error) {
	remote, err := n.credentials(ctx, spec)
	if err != nil {
		return vnode.NodeSpec{}, err
	}
	vs := vnode.NodeSpec{
		Name:   spec.Name,
		Labels: spec.Labels,
		Cordon: spec.Cordon,
		Remote: remote,
	}
	for _, t := range spec.Taints {
		vs.Taints = append(vs.Taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	caps := corev1.ResourceList{}
	for name, q := range map[corev1.ResourceName]*resource.Quantity{
		corev1.ResourceCPU: spec.Capacity.CPU, corev1.ResourceMemory: spec.Capacity.Memory, corev1.ResourcePods: spec.Capacity.Pods,
	} {
		if q != nil {
			caps[name] = q.DeepCopy()
		}
	}
	if len(caps) > 0 {
		vs.Capacity = caps
	}
	if spec.Namespaces.Mode == reconcile.NamespaceModePrefix {
		vs.NamespaceMode, vs.NamespacePrefix = vnode.NamespacePrefix, spec.Namespaces.Prefix
	} else {
		vs.NamespaceMode = vnode.NamespaceSame
	}
	return vs, nil
}

// credentials reads the remote's kubeconfig: from the Secret in Atoll's
// namespace, or from the (already absolute) path.
func (n *managerNodes) credentials(ctx context.Context, spec reconcile.NodeSpec) (*rest.Config, error) {
	var data []byte
	switch c := spec.Credentials; {
	case c.SecretRef != nil:
		key := c.SecretRef.Key
		if key == "" {
			key = reconcile.DefaultSecretKey
		}
		cctx, cancel := context.WithTimeout(ctx, n.timeout)
		defer cancel()
		s, err := n.master.CoreV1().Secrets(n.namespace).Get(cctx, c.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read secret %s/%s: %w: %w", n.namespace, c.SecretRef.Name, reconcile.ErrCredentials, err)
		}
		var ok bool
		if data, ok = s.Data[key]; !ok {
			return nil, fmt.Errorf("secret %s/%s has no key %q: %w", n.namespace, c.SecretRef.Name, key, reconcile.ErrCredentials)
		}
	case c.Path != "":
		if _, err := os.Stat(c.Path); err != nil {
			return nil, fmt.Errorf("read kubeconfig: %w: %w", reconcile.ErrCredentials, err)
		}
		// Loaded from the file so relative certificate paths resolve.
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w: %w", c.Path, reconcile.ErrCredentials, err)
		}
		return cfg, nil
	default:
		return nil, fmt.Errorf("cluster %s declares no credentials: %w", spec.Name, reconcile.ErrCredentials)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w: %w", spec.Name, reconcile.ErrCredentials, err)
	}
	return cfg, nil
}
