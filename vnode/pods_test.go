package vnode

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestUpdateCarriedToRemoteCopy: a new label, annotation or image on the
// master pod reaches its remote copy as a patch, and what the remote added
// (a label, the containers' other fields) stays.
func TestUpdateCarriedToRemoteCopy(t *testing.T) {
	b := startNode(t, nil, nil, versioned)
	ctx := context.Background()
	mp := masterPod("web-1", "1")
	mp.Spec.Containers[0].Args = []string{"--port=8080"}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remote pod created", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-1")
		return err == nil, err
	})
	remote, err := getRemote(b, "shop", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	remote.Labels["remote.example/added"] = "yes"
	if _, err := b.remote.CoreV1().Pods("shop").Update(ctx, remote, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	m, err := getMaster(b, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	m.Labels["version"] = "2"
	m.Annotations = map[string]string{"example.com/note": "rolled"}
	m.Spec.Containers[0].Image = "nginx:2"
	if _, err := b.master.CoreV1().Pods("shop").Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "label, annotation and image on the remote copy", func() (bool, error) {
		r, err := getRemote(b, "shop", "web-1")
		if err != nil {
			return false, err
		}
		return r.Labels["version"] == "2" && r.Annotations["example.com/note"] == "rolled" && r.Spec.Containers[0].Image == "nginx:2", nil
	})
	r, err := getRemote(b, "shop", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Labels["remote.example/added"] != "yes" || r.Labels[LabelOriginUID] != string(mp.UID) {
		t.Errorf("remote labels %v: the remote's own label or Atoll's were lost", r.Labels)
	}
	if len(r.Spec.Containers[0].Args) != 1 || r.Spec.Containers[0].Args[0] != "--port=8080" {
		t.Errorf("remote container args = %v: the patch replaced the container", r.Spec.Containers[0].Args)
	}
	patches := 0
	for _, a := range b.remote.Actions() {
		if a.GetResource().Resource == "pods" && a.GetVerb() == "patch" {
			patches++
		}
	}
	if patches == 0 {
		t.Error("no patch of the remote pod")
	}
}

// TestLeanRemotePod: the remote cache keeps what the sync reads and no
// more.
func TestLeanRemotePod(t *testing.T) {
	p := masterPod("web-1", "1")
	p.Spec.Containers[0].Args = []string{"--big"}
	d := int64(60)
	p.Spec.ActiveDeadlineSeconds = &d
	p.Spec.Volumes = make([]corev1.Volume, 0)
	got, err := leanRemotePod(p)
	if err != nil {
		t.Fatal(err)
	}
	lp := got.(*corev1.Pod)
	if lp.Spec.NodeName != testNode || *lp.Spec.ActiveDeadlineSeconds != 60 || lp.Spec.Containers[0].Image != "nginx" || lp.Spec.Containers[0].Name != "c" {
		t.Errorf("lean spec lost what the sync reads: %+v", lp.Spec)
	}
	if lp.Spec.Containers[0].Args != nil || lp.Spec.Volumes != nil {
		t.Errorf("lean spec kept more than it needs: %+v", lp.Spec)
	}
	if lp.Labels["app"] != "web" || lp.Status.Phase != p.Status.Phase {
		t.Error("lean pod lost its metadata or status")
	}
}
