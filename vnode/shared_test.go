package vnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestFanout: every event reaches each added handler until it is removed;
// nodeNamed passes only its Node's events.
func TestFanout(t *testing.T) {
	f := &fanout{}
	var a, b, deletesOfB []string
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	removeA := f.add(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) { a = append(a, obj.(*corev1.Node).Name) }})
	f.add(nodeNamed("b", cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b = append(b, obj.(*corev1.Node).Name) },
		DeleteFunc: func(obj any) { deletesOfB = append(deletesOfB, obj.(cache.DeletedFinalStateUnknown).Key) },
	}))
	f.OnAdd(node("a"), false)
	f.OnAdd(node("b"), false)
	removeA()
	f.OnAdd(node("c"), false)
	f.OnDelete(cache.DeletedFinalStateUnknown{Key: "b", Obj: node("b")})
	f.OnDelete(cache.DeletedFinalStateUnknown{Key: "c", Obj: node("c")})
	if len(a) != 2 || a[0] != "a" || a[1] != "b" {
		t.Errorf("handler a saw %v, want [a b] and nothing once removed", a)
	}
	if len(b) != 1 || b[0] != "b" || len(deletesOfB) != 1 || deletesOfB[0] != "b" {
		t.Errorf("handler of node b saw adds %v and deletes %v, want only b's", b, deletesOfB)
	}
}
