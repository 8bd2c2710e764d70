package vnode

import (
	"context"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// VirtualNode is a complete virtual-kubelet provider. Atoll drives it with its
// own controllers (see doc.go for why), but it also works under
// virtual-kubelet's PodController and NodeController.
var (
	_ vknode.PodLifecycleHandler = (*VirtualNode)(nil)
	_ vknode.PodNotifier         = (*VirtualNode)(nil)
	_ vknode.NodeProvider        = (*VirtualNode)(nil)
)

// CreatePod copies the pod's dependencies and creates its remote copy. It is
// idempotent: an existing copy of the same master pod is adopted.
func (v *VirtualNode) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	return v.createRemotePod(ctx, pod)
}

// UpdatePod carries the mutable fields of pod to its remote copy.
func (v *VirtualNode) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	remote, err := v.remote.pods.get(v.ns.Remote(pod.Namespace), pod.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return errdefs.NotFoundf("remote pod %s/%s not found", pod.Namespace, pod.Name)
		}
		return err
	}
	return v.updateRemotePod(ctx, pod, remote)
}

// DeletePod deletes the pod's remote copy with the pod's grace period. It
// returns an errdefs NotFound error when there is no copy.
func (v *VirtualNode) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	remote, err := v.remote.pods.get(v.ns.Remote(pod.Namespace), pod.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return errdefs.NotFoundf("remote pod %s/%s not found", pod.Namespace, pod.Name)
		}
		return err
	}
	if remote.Labels[LabelOriginUID] != string(pod.UID) && pod.UID != "" {
		return errdefs.NotFoundf("remote pod %s/%s is a copy of another pod", pod.Namespace, pod.Name)
	}
	p := pod.DeepCopy()
	if p.DeletionTimestamp == nil {
		return v.deleteOrphanPod(ctx, remote)
	}
	_, err = v.syncDeletion(ctx, p, remote)
	return err
}

// GetPod returns the remote copy of a master pod, as the master sees it
// (master namespace, master-side status). The result is a copy.
func (v *VirtualNode) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	remote, err := v.remote.pods.get(v.ns.Remote(namespace), name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errdefs.NotFoundf("pod %s/%s not found in remote", namespace, name)
		}
		return nil, err
	}
	return v.masterView(remote), nil
}

// GetPodStatus returns the master-side status of a pod's remote copy.
func (v *VirtualNode) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := v.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns every remote copy this node manages, as the master sees them.
func (v *VirtualNode) GetPods(context.Context) ([]*corev1.Pod, error) {
	list := v.remote.pods.list()
	out := make([]*corev1.Pod, 0, len(list))
	for _, p := range list {
		out = append(out, v.masterView(p))
	}
	return out, nil
}

// NotifyPods registers cb, called with the master view of a pod whenever its
// remote copy changes. It does not block.
func (v *VirtualNode) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	v.podNotify.Store(&cb)
}

// Ping reports whether the remote API server answers.
func (v *VirtualNode) Ping(ctx context.Context) error { return v.ping(ctx) }

// NotifyNodeStatus registers cb, called with the Node after each status write.
func (v *VirtualNode) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	v.nodeNotify.Store(&cb)
}

// notifyPod calls the NotifyPods callback, if any, with the master view of
// a remote pod cache entry.
func (v *VirtualNode) notifyPod(remote any) {
	if cb := v.podNotify.Load(); cb != nil {
		if p := podOf(remote); p != nil {
			(*cb)(v.masterView(p))
		}
	}
}

func (v *VirtualNode) notifyNode(n *corev1.Node) {
	if cb := v.nodeNotify.Load(); cb != nil {
		(*cb)(n.DeepCopy())
	}
}

// masterView returns a remote pod as it looks from the master: the master
// pod (spec, metadata) with the status mirrored from its remote copy; for a
// copy whose master pod is not known, the copy (its cached part) in the
// master namespace, bound to this node, hostIP the node's IP.
func (v *VirtualNode) masterView(remote *corev1.Pod) *corev1.Pod {
	k, ok := v.masterKeyOf(remote)
	if ok {
		if m, err := v.master.pods.get(k.namespace, k.name); err == nil && string(m.UID) == remote.Labels[LabelOriginUID] {
			p := m.DeepCopy()
			p.Status = MasterPodStatus(m, remote, v.cfg.NodeIP)
			return p
		}
	}
	p := remote.DeepCopy()
	if ok {
		p.Namespace = k.namespace
	}
	p.Spec.NodeName = v.name
	p.Status.HostIP = v.cfg.NodeIP
	return p
}
