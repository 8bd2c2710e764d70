package vnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestFanout: without a route every event reaches each added handler until
// it is removed; with one (Nodes by name) only the handlers of its key, and
// routes tells whether a key has any.
func TestFanout(t *testing.T) {
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	all := &fanout{}
	var a []string
	removeA := all.add("", cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) { a = append(a, obj.(*corev1.Node).Name) }})
	all.OnAdd(node("a"), false)
	all.OnAdd(node("b"), false)
	removeA()
	all.OnAdd(node("c"), false)
	if len(a) != 2 || a[0] != "a" || a[1] != "b" {
		t.Errorf("handler saw %v, want [a b] and nothing once removed", a)
	}

	routed := &fanout{route: nameOfNode}
	var b, deletesOfB []string
	removeB := routed.add("b", cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b = append(b, obj.(*corev1.Node).Name) },
		DeleteFunc: func(obj any) { deletesOfB = append(deletesOfB, obj.(cache.DeletedFinalStateUnknown).Key) },
	})
	if !routed.routes("b") || routed.routes("c") {
		t.Errorf("routes(b)=%v routes(c)=%v, want true and false", routed.routes("b"), routed.routes("c"))
	}
	routed.OnAdd(node("b"), false)
	routed.OnAdd(node("c"), false)
	routed.OnDelete(cache.DeletedFinalStateUnknown{Key: "b", Obj: node("b")})
	routed.OnDelete(cache.DeletedFinalStateUnknown{Key: "c", Obj: node("c")})
	if len(b) != 1 || b[0] != "b" || len(deletesOfB) != 1 || deletesOfB[0] != "b" {
		t.Errorf("handler of node b saw adds %v and deletes %v, want only b's", b, deletesOfB)
	}
	removeB()
	if routed.routes("b") {
		t.Error("routes(b) after its only handler was removed")
	}
}
