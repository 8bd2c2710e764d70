package vnode

import (
	"context"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestUpdateCarriedToRemoteCopy: a new label, annotation or image on the
// master pod reaches its remote copy as a patch, so does a label or
// annotation dropped from it, and what the remote added (a label, an
// annotation, the containers' other fields) stays.
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
	remote.Annotations["remote.example/note"] = "theirs"
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

	m, err = getMaster(b, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Labels, "version")
	m.Annotations = nil
	if _, err := b.master.CoreV1().Pods("shop").Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dropped label and annotation dropped from the remote copy", func() (bool, error) {
		r, err := getRemote(b, "shop", "web-1")
		if err != nil {
			return false, err
		}
		_, label := r.Labels["version"]
		_, note := r.Annotations["example.com/note"]
		return !label && !note, nil
	})
	r, err = getRemote(b, "shop", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Labels["remote.example/added"] != "yes" || r.Annotations["remote.example/note"] != "theirs" || r.Labels["app"] != "web" || r.Labels[LabelNode] != testNode {
		t.Errorf("remote labels %v, annotations %v: a key the master pod kept, the remote's or Atoll's was dropped", r.Labels, r.Annotations)
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

func TestEntryChanges(t *testing.T) {
	tests := []struct {
		name   string
		cur    map[string]string
		want   map[string]string
		copied []string
		patch  map[string]any
	}{
		{name: "unchanged", cur: map[string]string{"a": "1"}, want: map[string]string{"a": "1"}, copied: []string{"a"}},
		{name: "added and changed", cur: map[string]string{"a": "1"}, want: map[string]string{"a": "2", "b": "1"},
			patch: map[string]any{"a": "2", "b": "1"}},
		{name: "a copied key dropped", cur: map[string]string{"a": "1", "b": "1"}, want: map[string]string{"a": "1"}, copied: []string{"a", "b"},
			patch: map[string]any{"b": nil}},
		{name: "a key the remote added stays", cur: map[string]string{"a": "1", "remote": "x"}, want: map[string]string{"a": "1"}, copied: []string{"a"}},
		{name: "no record: nothing dropped", cur: map[string]string{"a": "1", "b": "1"}, want: map[string]string{"a": "1"}},
		{name: "a copied key already gone", cur: map[string]string{"a": "1"}, want: map[string]string{"a": "1"}, copied: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := entryChanges(tt.cur, tt.want, tt.copied)
			if !equality.Semantic.DeepEqual(got, tt.patch) {
				t.Fatalf("entryChanges = %#v, want %#v", got, tt.patch)
			}
		})
	}
}

// TestLeanRemotePod: the remote cache keeps what the sync reads and no
// more.
func TestLeanRemotePod(t *testing.T) {
	p := masterPod("web-1", "1")
	p.Spec.Containers[0].Args = []string{"--big"}
	d := int64(60)
	p.Spec.ActiveDeadlineSeconds = &d
	p.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "web-data"}}},
	}
	got, err := leanRemotePod(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(*leanPod); !ok {
		t.Fatalf("remote pods are cached as %T, want *leanPod", got)
	}
	lp := podOf(got)
	if lp.Spec.NodeName != testNode || *lp.Spec.ActiveDeadlineSeconds != 60 || lp.Spec.Containers[0].Image != "nginx" || lp.Spec.Containers[0].Name != "c" {
		t.Errorf("lean spec lost what the sync reads: %+v", lp.Spec)
	}
	if lp.Spec.Containers[0].Args != nil || len(lp.Spec.Volumes) != 1 || lp.Spec.Volumes[0].Name != "data" {
		t.Errorf("lean spec kept more than it needs, or lost the claims (%s): %+v", ConditionClaimsCopied, lp.Spec)
	}
	p.Spec.Volumes = p.Spec.Volumes[:1]
	if got, _ := leanRemotePod(p); podOf(got).Spec.Volumes != nil {
		t.Errorf("a pod without claims keeps volumes: %+v", podOf(got).Spec.Volumes)
	}
	if lp.Labels["app"] != "web" || lp.Status.Phase != p.Status.Phase {
		t.Error("lean pod lost its metadata or status")
	}
}

// TestLeanMasterPod: a pod of one of Atoll's nodes not yet delegated is
// cached whole; a delegated one, and one of any other node, keeps what can
// change, nodeName and the references the dependency index reads, and
// nothing else of its spec.
func TestLeanMasterPod(t *testing.T) {
	f := false
	full := masterPod("web-1", "1")
	d := int64(60)
	full.Spec.ActiveDeadlineSeconds = &d
	full.Spec.Containers[0].Args = []string{"--big"}
	full.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "PLAIN", Value: "x"},
		{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-env"}, Key: "k"}}},
		{Name: "FROM_FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	full.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s-envfrom"}, Optional: &f}}}}}
	full.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}, Items: []corev1.KeyToPath{{Key: "a", Path: "a"}}}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "both", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s-proj"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{}},
		}}}},
		{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
		}}}},
	}
	full.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
	full.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}

	atollNode := func(name string) bool { return name == testNode }
	got, err := leanMasterPod(full.DeepCopy(), atollNode)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got, full) {
		t.Fatalf("a pod not yet delegated must be cached whole; got spec %+v", got.(*corev1.Pod).Spec)
	}
	elsewhere := full.DeepCopy()
	elsewhere.Spec.NodeName = "worker-1"
	if got, _ := leanMasterPod(elsewhere, atollNode); podOf(got).Spec.Containers[0].Args != nil {
		t.Errorf("a pod of a node not Atoll's is cached with its whole spec (%T)", got)
	}

	delegated := full.DeepCopy()
	delegated.Status.Conditions = append(delegated.Status.Conditions, corev1.PodCondition{Type: ConditionDelegated, Status: corev1.ConditionTrue})
	got, err = leanMasterPod(delegated.DeepCopy(), atollNode)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(*leanPod); !ok {
		t.Fatalf("delegated master pods are cached as %T, want *leanPod", got)
	}
	lean := podOf(got)
	if want, have := PodDependencies(delegated), PodDependencies(lean); !equality.Semantic.DeepEqual(want, have) {
		t.Errorf("dependencies of the lean pod = %+v, want %+v", have, want)
	}
	if lean.Spec.NodeName != testNode || *lean.Spec.ActiveDeadlineSeconds != 60 ||
		lean.Spec.Containers[0].Name != "c" || lean.Spec.Containers[0].Image != "nginx" || lean.Spec.InitContainers[0].Image != "busybox" {
		t.Errorf("lean spec lost what the sync reads: %+v", lean.Spec)
	}
	if c := lean.Spec.Containers[0]; c.Args != nil || len(c.Env) != 1 || c.Env[0].Name != "FROM_CM" {
		t.Errorf("lean container kept more than references: %+v", c)
	}
	if len(lean.Spec.Volumes) != 2 || lean.Spec.Volumes[0].ConfigMap.Items != nil || len(lean.Spec.Volumes[1].Projected.Sources) != 1 {
		t.Errorf("lean volumes = %+v, want the ConfigMap and Secret references only", lean.Spec.Volumes)
	}
	if lean.Spec.Tolerations != nil {
		t.Errorf("lean spec kept tolerations: %+v", lean.Spec.Tolerations)
	}
	if !equality.Semantic.DeepEqual(lean.ObjectMeta, delegated.ObjectMeta) || !equality.Semantic.DeepEqual(lean.Status, delegated.Status) {
		t.Error("lean pod lost its metadata or status")
	}
}

// TestCreateFromLeanCacheReadsWholePod: a delegated pod whose copy must be
// made again (here: a live read first reported a foreign pod of its name,
// which went away before the create) is created from the pod as the master
// has it, never from the lean cache entry.
func TestCreateFromLeanCacheReadsWholePod(t *testing.T) {
	mp := masterPod("web-9", "9")
	mp.Spec.Containers[0].Args = []string{"--big"}
	mp.Status.Conditions = append(mp.Status.Conditions, corev1.PodCondition{Type: ConditionDelegated, Status: corev1.ConditionTrue})
	var foreignOnce atomic.Bool
	b := startNode(t, []runtime.Object{mp}, []runtime.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}, func(_, remote *fake.Clientset) {
		remote.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.(k8stesting.GetAction).GetName() == "web-9" && foreignOnce.CompareAndSwap(false, true) {
				return true, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-9", Namespace: "shop"}}, nil
			}
			return false, nil, nil
		})
	})
	// The test reads the remote tracker directly, past the reactor.
	tracked := func() (*corev1.Pod, error) {
		obj, err := b.remote.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "shop", "web-9")
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.Pod), nil
	}
	eventually(t, "remote copy created", func() (bool, error) {
		_, err := tracked()
		return err == nil, err
	})
	if !foreignOnce.Load() {
		t.Fatal("the sync never read the remote pod live: the test did not reach the path it is about")
	}
	cached, err := b.vn.master.pods.get("shop", "web-9")
	if err != nil {
		t.Fatal(err)
	}
	if cached.Spec.Containers[0].Args != nil {
		t.Fatal("the cache holds the delegated pod whole: the test does not exercise the lean cache")
	}
	r, err := tracked()
	if err != nil {
		t.Fatal(err)
	}
	if args := r.Spec.Containers[0].Args; len(args) != 1 || args[0] != "--big" {
		t.Fatalf("remote copy args = %v, want [--big]: it was made from the lean cache entry", args)
	}
}

// TestCreateFromPodCachedBeforeNodeAdded: a pod cached before its node had
// handlers (Atoll restarted; the node added after the master pod cache
// synced) is cached lean although not delegated; its copy is made from the
// pod as the master has it.
func TestCreateFromPodCachedBeforeNodeAdded(t *testing.T) {
	mp := masterPod("web-8", "8")
	mp.Spec.Containers[0].Args = []string{"--big"}
	var reads atomic.Int32
	b := startNode(t, []runtime.Object{mp}, nil, func(master, _ *fake.Clientset) {
		master.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.(k8stesting.GetAction).GetName() == "web-8" {
				reads.Add(1)
			}
			return false, nil, nil
		})
	})
	var r *corev1.Pod
	eventually(t, "remote copy created", func() (bool, error) {
		var err error
		r, err = getRemote(b, "shop", "web-8")
		return err == nil, err
	})
	if reads.Load() == 0 {
		t.Fatal("the master pod was never read: the cache held it whole, and the test does not reach the path it is about")
	}
	if args := r.Spec.Containers[0].Args; len(args) != 1 || args[0] != "--big" {
		t.Fatalf("remote copy args = %v, want [--big]: it was made from the lean cache entry", args)
	}
}

// TestPodsOfOtherNodesNotSeen: the master pod cache is shared by all nodes;
// a node sees only the pods bound to it, and a ConfigMap only pods of other
// nodes use is not its dependency.
func TestPodsOfOtherNodesNotSeen(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	other := masterPod("elsewhere", "e")
	other.Spec.NodeName = "worker-1"
	other.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "theirs"}}}}}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mine := masterPod("web-7", "7")
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mine, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remote copy of the node's pod", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-7")
		return err == nil, err
	})
	if _, exists, _ := b.vn.master.podInformer.GetStore().GetByKey("shop/elsewhere"); !exists {
		t.Fatal("the shared cache does not hold the other node's pod: the test proves nothing")
	}
	if _, err := b.vn.master.pods.get("shop", "elsewhere"); !apierrors.IsNotFound(err) {
		t.Errorf("the node sees a pod bound to worker-1 (err %v)", err)
	}
	for _, m := range b.vn.master.pods.metas() {
		if m.GetName() != "web-7" {
			t.Errorf("the node's pods include %s", m.GetName())
		}
	}
	if b.vn.dependencyUsed(KindConfigMap, "shop", "theirs") {
		t.Error("a ConfigMap of another node's pod counts as used by this node")
	}
	if _, err := getRemote(b, "shop", "elsewhere"); !apierrors.IsNotFound(err) {
		t.Errorf("the other node's pod was copied to this remote (err %v)", err)
	}
}
