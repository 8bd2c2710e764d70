package vnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// namespacedRemote makes the fake remote refuse, as a namespaced identity's
// Roles would, every call outside namespaces (cluster-wide lists and
// watches, other namespaces, cluster-scoped kinds), and records them.
// What every identity may read (the server's version) is allowed.
func namespacedRemote(namespaces ...string) (hook func(_, remote *fake.Clientset), refused func() []string) {
	var (
		mu  sync.Mutex
		out []string
	)
	hook = func(_, remote *fake.Clientset) {
		remote.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
			// The server version is public (so are /readyz and /version).
			if a.GetResource().Resource == "version" || scope(namespaces).serves(a.GetNamespace()) && a.GetNamespace() != "" {
				return false, nil, nil
			}
			mu.Lock()
			out = append(out, fmt.Sprintf("%s %s in %q", a.GetVerb(), a.GetResource().Resource, a.GetNamespace()))
			mu.Unlock()
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: a.GetResource().Resource}, "", errors.New("no Role here"))
		})
		remote.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
			if scope(namespaces).serves(a.GetNamespace()) && a.GetNamespace() != "" {
				return false, nil, nil
			}
			mu.Lock()
			out = append(out, fmt.Sprintf("watch %s in %q", a.GetResource().Resource, a.GetNamespace()))
			mu.Unlock()
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: a.GetResource().Resource}, "", errors.New("no Role here"))
		})
	}
	refused = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), out...)
	}
	return hook, refused
}

func quota(namespace string, hard ...string) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: namespace}, Spec: corev1.ResourceQuotaSpec{Hard: rl(hard...)}}
}

// TestNamespacedNode: a node confined to remote namespaces works with an
// identity that may do nothing outside them. It delegates the pods of its
// namespaces with their Secrets, leaves a pod of another namespace
// undelegated (NamespaceNotServed, once), creates no namespace, and
// advertises what its namespace's ResourceQuota leaves.
func TestNamespacedNode(t *testing.T) {
	hook, refused := namespacedRemote("shop")
	spec := testNodeSpec()
	spec.RemoteNamespaces = []string{"shop"}
	foreign := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "shop"},
		Spec: corev1.PodSpec{NodeName: "kwok-1", Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: rl("cpu", "1", "memory", "1Gi")}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	b := startNodeOf(t, spec, []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: "shop"}, Data: map[string][]byte{"pw": []byte("x")}},
	}, []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		quota("shop", "requests.cpu", "4", "requests.memory", "8Gi", "pods", "10"),
		foreign,
	}, hook)
	ctx := context.Background()

	mp := masterPod("web-1", "1")
	mp.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "pw"}}}}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := masterPod("blog-1", "2")
	other.Namespace = "blog"
	if _, err := b.master.CoreV1().Pods("blog").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pod of shop delegated with its Secret", func() (bool, error) {
		_, perr := getRemote(b, "shop", "web-1")
		_, serr := b.remote.CoreV1().Secrets("shop").Get(ctx, "web-secret", metav1.GetOptions{})
		return perr == nil && serr == nil, errors.Join(perr, serr)
	})
	eventually(t, "the pod of blog: Delegated=False, NamespaceNotServed", func() (bool, error) {
		m, err := b.master.CoreV1().Pods("blog").Get(ctx, "blog-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := findCondition(m.Status.Conditions, ConditionDelegated)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonNamespaceNotServed &&
			strings.Contains(c.Message, "shop") && strings.Contains(c.Message, "blog") && m.Status.Phase == corev1.PodPending, fmt.Errorf("condition %+v", c)
	})
	eventually(t, "Ready with what the quota leaves: cpu 3, memory 7Gi, pods 9", func() (bool, error) {
		n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		a := n.Status.Allocatable
		return nodeReady(n) && a.Cpu().Cmp(resource.MustParse("3")) == 0 && a.Memory().Cmp(resource.MustParse("7Gi")) == 0 &&
			a.Pods().Cmp(resource.MustParse("9")) == 0, fmt.Errorf("ready %v, allocatable %v", nodeReady(n), a)
	})
	for range 3 {
		if _, err := b.vn.syncPod(ctx, "blog", "blog-1"); err != nil {
			t.Fatal(err)
		}
	}
	var warnings int
	for len(b.recorder.Events) > 0 {
		if e := <-b.recorder.Events; contains(e, ReasonNamespaceNotServed) {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d %s Events, want 1", warnings, ReasonNamespaceNotServed)
	}
	// Deleted (as a drain does), the undelegated pod goes: it has no copy.
	m, err := b.master.CoreV1().Pods("blog").Get(ctx, "blog-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if _, err := b.master.CoreV1().Pods("blog").Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the undelegated pod deleted", func() (bool, error) {
		_, err := b.master.CoreV1().Pods("blog").Get(ctx, "blog-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	for _, a := range b.remote.Actions() {
		if a.GetResource().Resource == "namespaces" && a.GetVerb() == "create" {
			t.Errorf("a namespaced node created a namespace: %v", a)
		}
	}
	if r := refused(); len(r) > 0 {
		t.Errorf("calls outside the node's namespaces: %v", r)
	}
}

// TestNamespacedNodeCapacityUnknown: a resource no quota bounds and the
// Cluster caps not keeps the Node NotReady, saying which and where; a cap
// makes it Ready.
func TestNamespacedNodeCapacityUnknown(t *testing.T) {
	hook, refused := namespacedRemote("shop")
	spec := testNodeSpec()
	spec.RemoteNamespaces = []string{"shop"}
	b := startNodeOf(t, spec, nil, []runtime.Object{quota("shop", "requests.cpu", "4", "requests.memory", "8Gi")}, hook)
	ctx := context.Background()
	eventually(t, "NotReady, CapacityUnknown naming pods and shop", func() (bool, error) {
		n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var c *corev1.NodeCondition
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				c = &n.Status.Conditions[i]
			}
		}
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "CapacityUnknown" &&
			strings.Contains(c.Message, "namespace shop bounds pods"), fmt.Errorf("condition %+v", c)
	})
	spec.Capacity = rl("pods", "50")
	b.vn.setSpec(spec)
	eventually(t, "Ready with the cap", func() (bool, error) {
		n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReady(n) && n.Status.Allocatable.Pods().Cmp(resource.MustParse("50")) == 0, fmt.Errorf("allocatable %v", n.Status.Allocatable)
	})
	if r := refused(); len(r) > 0 {
		t.Errorf("calls outside the node's namespaces: %v", r)
	}
}

func TestRemoteQuotaAllocatable(t *testing.T) {
	pod := func(ns string, phase corev1.PodPhase, req ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns}, Status: corev1.PodStatus{Phase: phase},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: rl(req...)}}}}}
	}
	two := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "tight", Namespace: "a"}, Spec: corev1.ResourceQuotaSpec{Hard: rl("cpu", "2")}}
	tests := []struct {
		name          string
		namespaces    []string
		quotas        []*corev1.ResourceQuota
		pods          []*corev1.Pod
		want          corev1.ResourceList
		wantUnbounded map[corev1.ResourceName]string
	}{
		{
			name:       "hard minus the others' requests, summed over namespaces",
			namespaces: []string{"a", "b"},
			quotas:     []*corev1.ResourceQuota{quota("a", "requests.cpu", "4", "requests.memory", "4Gi", "pods", "10"), quota("b", "cpu", "1", "memory", "1Gi", "count/pods", "5")},
			pods:       []*corev1.Pod{pod("a", corev1.PodRunning, "cpu", "1500m", "memory", "1Gi"), pod("a", corev1.PodSucceeded, "cpu", "2"), pod("b", corev1.PodPending, "cpu", "250m")},
			want:       rl("cpu", "3250m", "memory", "4Gi", "pods", "13"),
		},
		{
			name:       "the tightest quota of a namespace wins",
			namespaces: []string{"a"},
			quotas:     []*corev1.ResourceQuota{quota("a", "requests.cpu", "4", "requests.memory", "4Gi", "pods", "10"), two},
			want:       rl("cpu", "2", "memory", "4Gi", "pods", "10"),
		},
		{
			name:       "never negative",
			namespaces: []string{"a"},
			quotas:     []*corev1.ResourceQuota{quota("a", "requests.cpu", "1", "requests.memory", "1Gi", "pods", "1")},
			pods:       []*corev1.Pod{pod("a", corev1.PodRunning, "cpu", "2", "memory", "2Gi"), pod("a", corev1.PodRunning)},
			want:       rl("cpu", "0", "memory", "0", "pods", "0"),
		},
		{
			name:          "a namespace without a bound leaves the resource out",
			namespaces:    []string{"a", "b"},
			quotas:        []*corev1.ResourceQuota{quota("a", "requests.cpu", "4", "requests.memory", "4Gi", "pods", "10"), quota("b", "requests.cpu", "1")},
			want:          rl("cpu", "5"),
			wantUnbounded: map[corev1.ResourceName]string{corev1.ResourceMemory: "b", corev1.ResourcePods: "b"},
		},
		{
			name:          "a quota of a namespace not served counts for nothing",
			namespaces:    []string{"a"},
			quotas:        []*corev1.ResourceQuota{quota("z", "requests.cpu", "4", "requests.memory", "4Gi", "pods", "10")},
			want:          rl(),
			wantUnbounded: map[corev1.ResourceName]string{corev1.ResourceCPU: "a", corev1.ResourceMemory: "a", corev1.ResourcePods: "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RemoteQuotaAllocatable(tt.namespaces, tt.quotas, tt.pods)
			if len(got.Allocatable) != len(tt.want) {
				t.Errorf("allocatable %v, want %v", got.Allocatable, tt.want)
			}
			for r, q := range tt.want {
				if g, ok := got.Allocatable[r]; !ok || g.Cmp(q) != 0 {
					t.Errorf("allocatable %s = %v, want %v", r, g.String(), q.String())
				}
			}
			if len(got.Unbounded) != len(tt.wantUnbounded) {
				t.Errorf("unbounded %v, want %v", got.Unbounded, tt.wantUnbounded)
			}
			for r, ns := range tt.wantUnbounded {
				if got.Unbounded[r] != ns {
					t.Errorf("unbounded %s in %q, want %q", r, got.Unbounded[r], ns)
				}
			}
		})
	}
}
