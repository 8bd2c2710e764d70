package vnode

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// versioned makes the fake clientsets treat pods as an API server does (the
// fake tracker leaves resource versions empty, takes any update, and lets a
// status write replace the whole object): every write stamps a new
// resourceVersion, an update that names an older one is a conflict, and a
// status update keeps the stored spec.
func versioned(master, remote *fake.Clientset) {
	var rv atomic.Int64
	for _, c := range []*fake.Clientset{master, remote} {
		stamp := func(a k8stesting.Action) (bool, runtime.Object, error) {
			// Create and update actions both carry the object written.
			w, ok := a.(interface{ GetObject() runtime.Object })
			if !ok {
				return false, nil, nil
			}
			p, ok := w.GetObject().(*corev1.Pod)
			if !ok {
				return false, nil, nil
			}
			if a.GetVerb() == "update" {
				cur, err := c.Tracker().Get(a.GetResource(), p.Namespace, p.Name)
				if err != nil {
					return true, nil, err
				}
				stored := cur.(*corev1.Pod)
				if p.ResourceVersion != "" && p.ResourceVersion != stored.ResourceVersion {
					return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), p.Name,
						fmt.Errorf("resourceVersion %s is not the latest (%s)", p.ResourceVersion, stored.ResourceVersion))
				}
				if a.GetSubresource() == "status" {
					p.Spec = stored.Spec
				}
			}
			p.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
			return false, nil, nil
		}
		c.PrependReactor("create", "pods", stamp)
		c.PrependReactor("update", "pods", stamp)
	}
}

// TestConvergedPodRemembered: once a pod and its copy agree, their state
// is remembered, so a resync skips the work; a new remote state, or a new
// node spec, is looked at again.
func TestConvergedPodRemembered(t *testing.T) {
	b := startNode(t, nil, nil, versioned)
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-1", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := workKey{kind: keyPod, namespace: "shop", name: "web-1"}
	// state is what the node's caches hold now for the pod.
	state := func() (podState, bool) {
		m, err := b.vn.master.pods.get("shop", "web-1")
		if err != nil {
			return podState{}, false
		}
		r, err := b.vn.remote.pods.get("shop", "web-1")
		if err != nil {
			return podState{}, false
		}
		return podState{m.ResourceVersion, r.ResourceVersion, b.vn.specGen.Load()}, true
	}
	converged := func() (bool, error) {
		s, ok := state()
		return ok && b.vn.converged.has(k, s), nil
	}
	eventually(t, "pod delegated and remembered as converged", converged)

	remote, err := getRemote(b, "shop", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	remote.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7"}
	if _, err := b.remote.CoreV1().Pods("shop").UpdateStatus(ctx, remote, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new remote status mirrored despite the memo", func() (bool, error) {
		m, err := getMaster(b, "web-1")
		return err == nil && m.Status.PodIP == "10.244.0.7", err
	})
	eventually(t, "remembered again", converged)

	// A converged state is recognised from the resource versions alone: a
	// cache entry whose content differs under the same versions (as no
	// API server makes one) is not even read, so nothing is written.
	store := b.vn.master.pods.informers.of(metav1.NamespaceAll).GetStore()
	obj, _, err := store.GetByKey("shop/web-1")
	if err != nil {
		t.Fatal(err)
	}
	lean, ok := obj.(*leanPod)
	if !ok {
		t.Fatalf("delegated master pod cached as %T, want *leanPod", obj)
	}
	forged := *lean
	forged.status.PodIP = "10.244.0.99"
	if err := store.Update(&forged); err != nil {
		t.Fatal(err)
	}
	writes := len(b.master.Actions())
	if _, err := b.vn.syncPod(ctx, "shop", "web-1"); err != nil {
		t.Fatal(err)
	}
	if n := len(b.master.Actions()) - writes; n != 0 {
		t.Fatalf("sync of a remembered state made %d master requests: %v", n, b.master.Actions()[writes:])
	}
	if err := store.Update(lean); err != nil {
		t.Fatal(err)
	}

	// A new spec is a new state: the next resync syncs the pod in full
	// (only a full sync remembers a state).
	before := b.vn.specGen.Load()
	spec := testNodeSpec()
	spec.Labels = map[string]string{"tier": "gold"}
	b.vn.setSpec(spec)
	if b.vn.specGen.Load() == before {
		t.Fatal("setSpec did not start a new spec generation")
	}
	eventually(t, "synced again and remembered with the new spec", converged)
}

func TestInSyncForget(t *testing.T) {
	c := newInSync()
	k := workKey{kind: keyPod, namespace: "ns", name: "a"}
	s := podState{"1", "2", 0}
	if c.has(k, s) {
		t.Fatal("empty memo has a state")
	}
	c.set(k, s)
	if !c.has(k, s) || c.has(k, podState{"1", "3", 0}) || c.has(workKey{kind: keyPod, namespace: "ns", name: "b"}, s) {
		t.Error("has does not match exactly the state set for the key")
	}
	c.forget(k)
	if c.has(k, s) {
		t.Error("state kept after forget")
	}
}
