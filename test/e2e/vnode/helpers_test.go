package vnode_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// namespace creates a master namespace for one test, waits for its default
// service account, and deletes it (and the remote namespaces Atoll created
// for it) when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(fmt.Sprintf("e2e-%s-%04d", strings.ReplaceAll(t.Name(), "/", "-"), rand.IntN(10000)))
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := master.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "default service account in "+name, func(ctx context.Context) (bool, error) {
		_, err := master.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = master.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		// Pods leave through the virtual nodes: wait until the master
		// namespace is gone, then remove the remote namespaces.
		_ = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := master.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		for _, rc := range remotes {
			_ = rc.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	return name
}

// simplePod is a pod kwok runs; nodeName pins it to a virtual node ("" lets
// the master's scheduler choose).
func simplePod(ns, name, nodeName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
}

// runPod creates simplePod(ns, name, nodeName) in the master and waits
// until it is Running there.
func runPod(t *testing.T, ns, name, nodeName string) {
	t.Helper()
	ctx := testenv.Context(t)
	if _, err := master.CoreV1().Pods(ns).Create(ctx, simplePod(ns, name, nodeName), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, name+" Running", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, name)
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
}

func getPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	return master.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
}

// remotePod returns the remote copy of a master pod, from the remote of the
// virtual node the pod is bound to.
func remotePod(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
	rc, ok := remotes[p.Spec.NodeName]
	if !ok {
		return nil, fmt.Errorf("pod %s/%s is bound to %q, not to a virtual node", p.Namespace, p.Name, p.Spec.NodeName)
	}
	return rc.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// checkAtollLabels fails unless remote carries Atoll's labels for master pod p.
func checkAtollLabels(t *testing.T, p, remote *corev1.Pod) {
	t.Helper()
	want := map[string]string{
		vnode.LabelOriginUID: string(p.UID),
		vnode.LabelNode:      p.Spec.NodeName,
		vnode.LabelMaster:    masterID,
	}
	for k, v := range want {
		if remote.Labels[k] != v {
			t.Errorf("remote pod %s/%s: label %s = %q, want %q", remote.Namespace, remote.Name, k, remote.Labels[k], v)
		}
	}
}

// stopAPIServer stops cluster's kube-apiserver until the test starts it
// again (StartAPIServer) or ends: then it is started for the next tests.
func stopAPIServer(ctx context.Context, t *testing.T, cluster *testenv.Cluster) {
	t.Helper()
	if err := cluster.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.StartAPIServer(context.Background()) })
}
