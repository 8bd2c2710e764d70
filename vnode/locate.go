package vnode

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"

	"github.com/atoll-dev/atoll/vnode/kubeletapi"
)

var _ kubeletapi.Locator = (*Manager)(nil)

// Locate returns the remote pod behind the master pod namespace/name, for the
// kubelet API. It reads the virtual nodes' caches; it makes no API call.
func (m *Manager) Locate(_ context.Context, namespace, name string) (kubeletapi.Target, error) {
	for _, n := range m.running() {
		_, err := n.vn.master.pods.get(namespace, name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return kubeletapi.Target{}, fmt.Errorf("look up pod %s/%s: %w", namespace, name, err)
		}
		return kubeletapi.Target{
			Node:      n.vn.name,
			Config:    n.remote,
			Client:    n.vn.remote.client,
			Namespace: n.vn.ns.Remote(namespace),
			Name:      name,
		}, nil
	}
	return kubeletapi.Target{}, fmt.Errorf("pod %s/%s: %w", namespace, name, kubeletapi.ErrPodNotFound)
}

// Pods returns the master pods bound to the virtual nodes of this process,
// read from the master: the pod cache keeps delegated pods without most of
// their spec (leanMasterPod), and /pods answers with whole pods.
func (m *Manager) Pods(ctx context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, n := range m.running() {
		opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.vn.name).String()}
		var list *corev1.PodList
		err := withTimeout(ctx, n.vn.cfg.RequestTimeout, func(c context.Context) error {
			var err error
			list, err = n.vn.master.client.CoreV1().Pods("").List(c, opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list pods of %s: %w", n.vn.name, err)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// runningNode is a started virtual node and the remote it reaches.
type runningNode struct {
	vn     *VirtualNode
	remote *rest.Config
}

// running returns the started virtual nodes.
func (m *Manager) running() []runningNode {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]runningNode, 0, len(m.nodes))
	for _, n := range m.nodes {
		if n.vn != nil {
			out = append(out, runningNode{vn: n.vn, remote: rest.CopyConfig(n.spec.Remote)})
		}
	}
	return out
}
