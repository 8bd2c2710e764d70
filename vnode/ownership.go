package vnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// IsVirtualNode reports whether n is Atoll's virtual node of its name: it
// carries atoll.dev/cluster=<its name>. Atoll writes and deletes no other
// Node, so a Cluster named after one of the master's real nodes never
// takes that node over (deploy/master's admission policy refuses the same).
func IsVirtualNode(n *corev1.Node) bool {
	return n.Labels[LabelCluster] == n.Name
}

// ErrNotVirtual is the error of a write refused because the master's Node
// of that name is not Atoll's.
var ErrNotVirtual = errors.New("not Atoll's")

func errNotVirtual(n *corev1.Node) error {
	return fmt.Errorf("node %s exists and is %w (it lacks the label %s=%s): it is left as it is, and no pod bound to it is delegated; give the Cluster another name",
		n.Name, ErrNotVirtual, LabelCluster, n.Name)
}

// waitOwnNode returns once the master's Node of this virtual node is
// Atoll's (runNodeStatus registers it), or ctx ends. Until then no pod
// bound to a node of that name is delegated: were it a real node's, its
// pods are not Atoll's to run.
func (v *VirtualNode) waitOwnNode(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		n, err := v.master.nodes.Lister().Get(v.name)
		return err == nil && IsVirtualNode(n), nil
	})
}

// DeleteVirtualNode deletes the master's Node name and its Lease in
// kube-node-lease, each call bounded by timeout, if the Node is Atoll's
// (IsVirtualNode) or missing. A Node of that name that is not Atoll's is
// someone else's, with its Lease: both are left, and nothing of Atoll's is
// there to delete. The delete is preconditioned on the UID and
// resourceVersion read, so a Node replaced in between is not deleted.
func DeleteVirtualNode(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	var n *corev1.Node
	err := withTimeout(ctx, timeout, func(c context.Context) (err error) {
		n, err = client.CoreV1().Nodes().Get(c, name, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get node %s: %w", name, err)
	case !IsVirtualNode(n):
		return nil
	default:
		pre := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &n.UID, ResourceVersion: &n.ResourceVersion}}
		err = withTimeout(ctx, timeout, func(c context.Context) error {
			return client.CoreV1().Nodes().Delete(c, name, pre)
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete node %s: %w", name, err)
		}
	}
	err = withTimeout(ctx, timeout, func(c context.Context) error {
		return client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(c, name, metav1.DeleteOptions{})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node lease %s: %w", name, err)
	}
	return nil
}

// ReasonNotAtollsNode is NodeHealth.Reason while the master Node of the
// virtual node's name is not Atoll's (ErrNotVirtual).
const ReasonNotAtollsNode = "NodeNotAtolls"
