package vnode

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDeleteVirtualNodeDeletesOnlyAtollsNodes(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	lease := func(name string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease}}
	}
	client := fake.NewClientset(
		node("virtual", map[string]string{LabelCluster: "virtual"}), lease("virtual"),
		node("real", nil), lease("real"),
		// Labelled for another cluster: not this name's virtual node.
		node("other", map[string]string{LabelCluster: "elsewhere"}), lease("other"),
		lease("gone"))
	ctx := context.Background()
	for _, name := range []string{"virtual", "real", "other", "gone", "never"} {
		if err := DeleteVirtualNode(ctx, client, name, 5*time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, kept := range map[string]bool{"virtual": false, "real": true, "other": true, "gone": false} {
		_, nerr := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		_, lerr := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if kept && (nerr != nil || lerr != nil) {
			t.Errorf("%s: want node and lease kept, got %v, %v", name, nerr, lerr)
		}
		if !kept && (!apierrors.IsNotFound(nerr) || !apierrors.IsNotFound(lerr)) {
			t.Errorf("%s: want node and lease deleted, got %v, %v", name, nerr, lerr)
		}
	}
}
