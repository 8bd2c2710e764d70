package vnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	testNode   = "cern-001"
	testMaster = "m1"
)

type testBed struct {
	master   *fake.Clientset
	remote   *fake.Clientset
	vn       *VirtualNode
	recorder *record.FakeRecorder
	registry *prometheus.Registry
}

// startNode runs a VirtualNode of testNodeSpec against fake master and
// remote clusters until the test ends.
func startNode(t *testing.T, masterObjs, remoteObjs []runtime.Object, hooks func(master, remote *fake.Clientset)) *testBed {
	t.Helper()
	return startNodeOf(t, testNodeSpec(), masterObjs, remoteObjs, hooks)
}

// startNodeOf is startNode for a node of spec.
func startNodeOf(t *testing.T, spec NodeSpec, masterObjs, remoteObjs []runtime.Object, hooks func(master, remote *fake.Clientset)) *testBed {
	t.Helper()
	b := runNodeOf(t, spec, masterObjs, remoteObjs, hooks)
	select {
	case <-b.vn.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("virtual node not ready")
	}
	return b
}

// runNodeOf is startNodeOf without waiting for the node to be ready.
func runNodeOf(t *testing.T, spec NodeSpec, masterObjs, remoteObjs []runtime.Object, hooks func(master, remote *fake.Clientset)) *testBed {
	t.Helper()
	readyNode := remoteNode("kwok-1", true, false, rl("cpu", "32", "memory", "64Gi", "pods", "110"))
	b := &testBed{
		// The simple clientset keeps no managed fields, so the informers'
		// transform never writes to objects the fake tracker shares.
		master:   fake.NewSimpleClientset(masterObjs...),                                         //nolint:staticcheck // see above
		remote:   fake.NewSimpleClientset(append([]runtime.Object{readyNode}, remoteObjs...)...), //nolint:staticcheck // see above
		recorder: record.NewFakeRecorder(1000),
	}
	if hooks != nil {
		hooks(b.master, b.remote)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shared, err := newMasterShared(b.master, 0, func(string) record.EventRecorder { return b.recorder })
	if err != nil {
		t.Fatal(err)
	}
	shared.start(ctx.Done())
	// The master's pods are cached before the node is added, as after a
	// restart of Atoll: they are cached lean (their node had no handler).
	if !cache.WaitForCacheSync(ctx.Done(), shared.podInformer.HasSynced) {
		t.Fatal("master pod cache not synced")
	}
	reg := prometheus.NewRegistry()
	b.registry = reg
	metrics, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ManagerConfig{
		MasterID: testMaster, NodeIP: "192.0.2.1", KubeletPort: 10250, Workers: 2,
		RequestTimeout: 5 * time.Second, PingTimeout: time.Second, PingInterval: 50 * time.Millisecond,
		ResyncPeriod: time.Second, CapacityInterval: time.Second, GCInterval: 100 * time.Millisecond,
		LeaseDuration: 40 * time.Second, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 20 * time.Millisecond,
	}
	b.vn = newVirtualNode(spec, cfg, shared, b.remote, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics)
	go func() { _ = b.vn.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-b.vn.Done()
		shared.shutdown()
	})
	return b
}

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

func masterPod(name, uid string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + uid), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		}},
	}
	return p
}

func getRemote(b *testBed, ns, name string) (*corev1.Pod, error) {
	return b.remote.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
}

func getMaster(b *testBed, name string) (*corev1.Pod, error) {
	return b.master.CoreV1().Pods("shop").Get(context.Background(), name, metav1.GetOptions{})
}

func TestPodDelegatedAndStatusMirrored(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	mp := masterPod("web-1", "1")
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var remote *corev1.Pod
	eventually(t, "remote pod created", func() (bool, error) {
		var err error
		remote, err = getRemote(b, "shop", "web-1")
		return err == nil, err
	})
	for k, want := range map[string]string{LabelOriginUID: string(mp.UID), LabelNode: testNode, LabelMaster: testMaster, "app": "web"} {
		if remote.Labels[k] != want {
			t.Errorf("remote label %s = %q, want %q", k, remote.Labels[k], want)
		}
	}
	if remote.Spec.NodeName != "" {
		t.Errorf("remote nodeName = %q, want empty", remote.Spec.NodeName)
	}
	if ns, err := b.remote.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil ||
		ns.Labels[LabelManaged] != "true" || ns.Labels[LabelMaster] != testMaster || ns.Labels[LabelNode] != testNode {
		t.Errorf("remote namespace not created and labelled managed by this master and node: %v %v", ns, err)
	}

	// The remote kubelet runs it.
	remote.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.9", HostIP: "10.0.0.1", Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
	}}
	if _, err := b.remote.CoreV1().Pods("shop").UpdateStatus(ctx, remote, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "master status Running", func() (bool, error) {
		m, err := getMaster(b, "web-1")
		if err != nil {
			return false, err
		}
		return m.Status.Phase == corev1.PodRunning && m.Status.PodIP == "10.244.0.9" && m.Status.HostIP == "192.0.2.1" &&
			hasCondition(m, ConditionDelegated) && hasCondition(m, ConditionRemoteScheduled), nil
	})

	// Only one remote create, whatever the number of syncs.
	creates := 0
	for _, a := range b.remote.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("remote pod creates = %d, want 1", creates)
	}

	// Master pod gone (force-deleted) -> remote copy collected.
	if err := b.master.CoreV1().Pods("shop").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remote copy deleted", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-1")
		return apierrors.IsNotFound(err), err
	})
}

func TestRemoteDeletedFailsMasterPod(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-2", "2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "master pod marked Delegated", func() (bool, error) {
		m, err := getMaster(b, "web-2")
		return err == nil && hasCondition(m, ConditionDelegated), err
	})
	if err := b.remote.CoreV1().Pods("shop").Delete(ctx, "web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "master pod Failed RemoteDeleted", func() (bool, error) {
		m, err := getMaster(b, "web-2")
		return err == nil && m.Status.Phase == corev1.PodFailed && m.Status.Reason == ReasonRemoteDeleted, err
	})
	// And it is not recreated remotely.
	time.Sleep(200 * time.Millisecond) // several sync and GC periods of this bed
	if _, err := getRemote(b, "shop", "web-2"); !apierrors.IsNotFound(err) {
		t.Fatalf("a failed master pod must not be recreated remotely: %v", err)
	}
}

func TestNameConflictLeavesForeignPodUntouched(t *testing.T) {
	foreign := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-3", Namespace: "shop", Labels: map[string]string{"owner": "someone-else"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "theirs"}}},
	}
	shopNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	b := startNode(t, nil, []runtime.Object{foreign, shopNS}, nil)
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-3", "3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NameConflict condition", func() (bool, error) {
		m, err := getMaster(b, "web-3")
		return err == nil && hasCondition(m, ConditionNameConflict), err
	})
	got, err := getRemote(b, "shop", "web-3")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Containers[0].Image != "theirs" || got.Labels[LabelMaster] != "" {
		t.Fatalf("foreign pod was changed: %+v", got)
	}
	for _, a := range b.remote.Actions() {
		if (a.GetVerb() == "delete" || a.GetVerb() == "update" || a.GetVerb() == "patch") && a.GetResource().Resource == "pods" {
			t.Fatalf("foreign pod touched: %s", a.GetVerb())
		}
	}
}

func TestAdoptsExistingCopyWithoutDuplicate(t *testing.T) {
	mp := masterPod("web-4", "4")
	existing, err := TranslatePod(mp, TranslateOptions{NodeName: testNode, MasterID: testMaster, Namespaces: NamespaceMapping{Mode: NamespaceSame}})
	if err != nil {
		t.Fatal(err)
	}
	existing.Status.Phase = corev1.PodRunning
	// An orphan of this node from before a restart, whose master pod is gone.
	orphan := existing.DeepCopy()
	orphan.Name, orphan.Labels = "gone-1", cloneLabels(existing.Labels)
	orphan.Labels[LabelOriginUID] = "uid-gone"
	b := startNode(t, []runtime.Object{mp}, []runtime.Object{existing, orphan, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}, nil)
	eventually(t, "status adopted", func() (bool, error) {
		m, err := getMaster(b, "web-4")
		return err == nil && m.Status.Phase == corev1.PodRunning, err
	})
	eventually(t, "orphan collected", func() (bool, error) {
		_, err := getRemote(b, "shop", "gone-1")
		return apierrors.IsNotFound(err), err
	})
	for _, a := range b.remote.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			t.Fatal("an existing copy must be adopted, not created again")
		}
	}
}

// A changed namespace mapping restarts the node: a delegated pod moves (its
// copy is made again where the new mapping says; it is not taken for
// deleted behind Atoll's back), and the copies the earlier mapping made,
// now outside it, are deleted; a foreign pod there is left alone.
func TestCopiesOutsideNamespaceMappingDeleted(t *testing.T) {
	mp := masterPod("web-6", "6")
	mp.Status.Phase = corev1.PodRunning
	mp.Status.Conditions = append(mp.Status.Conditions, corev1.PodCondition{Type: ConditionDelegated, Status: corev1.ConditionTrue})
	same := TranslateOptions{NodeName: testNode, MasterID: testMaster, Namespaces: NamespaceMapping{Mode: NamespaceSame}}
	earlier, err := TranslatePod(mp, same)
	if err != nil {
		t.Fatal(err)
	}
	cm := remoteConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "conf", Namespace: "shop", UID: "uid-conf"}}, same.Namespaces, testMaster, testNode)
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop"}}
	spec := testNodeSpec()
	spec.NamespaceMode, spec.NamespacePrefix = NamespacePrefix, "hub-"
	b := startNodeOf(t, spec, []runtime.Object{mp}, []runtime.Object{earlier, cm, foreign}, nil)
	eventually(t, "copy made in the mapped namespace", func() (bool, error) {
		_, err := getRemote(b, "hub-shop", "web-6")
		return err == nil, err
	})
	eventually(t, "earlier copy deleted", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-6")
		return apierrors.IsNotFound(err), err
	})
	eventually(t, "earlier ConfigMap copy deleted", func() (bool, error) {
		_, err := b.remote.CoreV1().ConfigMaps("shop").Get(context.Background(), "conf", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	if _, err := getRemote(b, "shop", "other"); err != nil {
		t.Fatalf("foreign pod: %v", err)
	}
	m, err := getMaster(b, "web-6")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status.Phase == corev1.PodFailed {
		t.Fatalf("master pod failed (%s): a moved copy is not a deleted one", m.Status.Reason)
	}
}

func TestStatusWriteRetriedPastVirtualKubeletLimit(t *testing.T) {
	var failures atomic.Int32
	const failFirst = 40 // virtual-kubelet gives up after 20
	b := startNode(t, nil, nil, func(master, _ *fake.Clientset) {
		master.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "status" {
				return false, nil, nil
			}
			if failures.Add(1) <= failFirst {
				return true, nil, apierrors.NewServiceUnavailable("master overloaded")
			}
			return false, nil, nil
		})
	})
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-5", "5"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status written after many failures", func() (bool, error) {
		m, err := getMaster(b, "web-5")
		return err == nil && hasCondition(m, ConditionDelegated), err
	})
	if n := failures.Load(); n <= failFirst {
		t.Fatalf("status writes = %d, want > %d", n, failFirst)
	}
}

func TestDependenciesCopiedSyncedAndCollected(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	mp := masterPod("web-6", "6")
	mp.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}}
	mp.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "pw"}}}}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Missing required ConfigMap: pending with a condition and an Event, no remote pod.
	eventually(t, "DependenciesReady=False", func() (bool, error) {
		m, err := getMaster(b, "web-6")
		if err != nil {
			return false, err
		}
		c := findCondition(m.Status.Conditions, ConditionDependenciesReady)
		return c != nil && c.Status == corev1.ConditionFalse, nil
	})
	if _, err := getRemote(b, "shop", "web-6"); !apierrors.IsNotFound(err) {
		t.Fatalf("pod created before its dependencies: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config", Namespace: "shop", UID: "cm-uid"}, Data: map[string]string{"k": "v1"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: "shop", UID: "s-uid"}, Data: map[string][]byte{"pw": []byte("x")}}
	if _, err := b.master.CoreV1().ConfigMaps("shop").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.master.CoreV1().Secrets("shop").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remote pod after dependencies appear", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-6")
		return err == nil, err
	})
	rcm, err := b.remote.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || rcm.Data["k"] != "v1" || rcm.Labels[LabelOriginUID] != "cm-uid" {
		t.Fatalf("remote ConfigMap = %+v, %v", rcm, err)
	}
	if _, err := b.remote.CoreV1().Secrets("shop").Get(ctx, "web-secret", metav1.GetOptions{}); err != nil {
		t.Fatalf("remote Secret: %v", err)
	}
	cm.Data["k"] = "v2"
	if _, err := b.master.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ConfigMap edit reaches the copy", func() (bool, error) {
		rcm, err := b.remote.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metav1.GetOptions{})
		return err == nil && rcm.Data["k"] == "v2", err
	})
	if err := b.master.CoreV1().Pods("shop").Delete(ctx, "web-6", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "copies collected", func() (bool, error) {
		_, err1 := b.remote.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metav1.GetOptions{})
		_, err2 := b.remote.CoreV1().Secrets("shop").Get(ctx, "web-secret", metav1.GetOptions{})
		return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), errors.Join(err1, err2)
	})
	if _, err := b.master.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the master ConfigMap must stay: %v", err)
	}
}

// TestDependenciesOfAnUnreadableNamespace: Atoll reads ConfigMaps and
// Secrets only in the namespaces it runs pods of, with the rights bound
// there. A pod whose Secret it may not read waits with a condition that
// says what to bind; once the rights are there, it is delegated. No other
// namespace's Secrets are listed.
func TestDependenciesOfAnUnreadableNamespace(t *testing.T) {
	var bound atomic.Bool
	var listed sync.Map // namespaces whose secrets were listed
	b := startNode(t, []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: "shop"}, Data: map[string][]byte{"pw": []byte("x")}},
	}, nil, func(master, _ *fake.Clientset) {
		master.PrependReactor("list", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			listed.Store(a.GetNamespace(), true)
			if !bound.Load() {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New("no binding"))
			}
			return false, nil, nil
		})
	})
	ctx := context.Background()
	mp := masterPod("web-8", "8")
	mp.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "pw"}}}}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DependenciesReady=False, DependenciesForbidden", func() (bool, error) {
		m, err := getMaster(b, "web-8")
		if err != nil {
			return false, err
		}
		c := findCondition(m.Status.Conditions, ConditionDependenciesReady)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonDependenciesForbidden &&
			strings.Contains(c.Message, "secrets of namespace shop") && strings.Contains(c.Message, DependenciesRole), fmt.Errorf("condition %+v", c)
	})
	if _, err := getRemote(b, "shop", "web-8"); !apierrors.IsNotFound(err) {
		t.Fatalf("pod created without its Secret: %v", err)
	}
	bound.Store(true)
	eventually(t, "delegated once the rights are bound", func() (bool, error) {
		m, err := getMaster(b, "web-8")
		if err != nil {
			return false, err
		}
		_, rerr := b.remote.CoreV1().Secrets("shop").Get(ctx, "web-secret", metav1.GetOptions{})
		c := findCondition(m.Status.Conditions, ConditionDependenciesReady)
		return hasCondition(m, ConditionDelegated) && rerr == nil && (c == nil || c.Status == corev1.ConditionTrue), fmt.Errorf("secret copy: %v, condition %+v", rerr, c)
	})
	listed.Range(func(ns, _ any) bool {
		if ns != "shop" {
			t.Errorf("the master's secrets listed in namespace %q", ns)
		}
		return true
	})
}

func TestCreateRefusedIsReportedAndRetried(t *testing.T) {
	var refusals atomic.Int32
	b := startNode(t, nil, nil, func(_, remote *fake.Clientset) {
		remote.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if refusals.Add(1) <= 5 {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-7", errors.New("exceeded quota: compute"))
			}
			return false, nil, nil
		})
	})
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-7", "7"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "created after refusals", func() (bool, error) {
		_, err := getRemote(b, "shop", "web-7")
		return err == nil, err
	})
	found := false
	for len(b.recorder.Events) > 0 {
		if e := <-b.recorder.Events; contains(e, "RemoteCreateFailed") && contains(e, "exceeded quota") {
			found = true
		}
	}
	if !found {
		t.Fatal("no RemoteCreateFailed Event with the remote's message")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestNodeRegisteredAndRecreated(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	eventually(t, "node Ready", func() (bool, error) {
		n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		return err == nil && nodeReady(n) && n.Labels[LabelType] == "virtual-kubelet" && n.Labels[LabelCluster] == testNode, err
	})
	eventually(t, "lease", func() (bool, error) {
		l, err := b.master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, testNode, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil, err
	})
	if err := b.master.CoreV1().Nodes().Delete(ctx, testNode, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node recreated", func() (bool, error) {
		_, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		return err == nil, err
	})
	spec := testNodeSpec()
	spec.Cordon = true
	spec.Labels["tier"] = "gold"
	b.vn.setSpec(spec)
	eventually(t, "live update", func() (bool, error) {
		n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		return err == nil && n.Spec.Unschedulable && n.Labels["tier"] == "gold", err
	})
}

// TestRealNodeOfTheSameNameLeftAlone: a Cluster named after one of the
// master's real Nodes does not take it over: the Node keeps its labels,
// taints and status, its Lease is not renewed, its pods are not delegated,
// and the node's health names the conflict.
func TestRealNodeOfTheSameNameLeftAlone(t *testing.T) {
	real := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, Labels: map[string]string{"kubernetes.io/hostname": testNode}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}}}
	b := runNodeOf(t, testNodeSpec(), []runtime.Object{real, masterPod("web-1", "1")}, nil, nil)
	ctx := context.Background()
	eventually(t, "the conflict reported", func() (bool, error) {
		h := b.vn.Health()
		return strings.Contains(h.LastError, "node "+testNode+" exists and is not Atoll's"), errors.New(h.LastError)
	})
	// Several passes of the node loop (PingInterval 50 ms) have run by the
	// time a second report comes.
	first := b.vn.Health().LastErrorTime
	eventually(t, "the conflict reported again", func() (bool, error) {
		return b.vn.Health().LastErrorTime.After(first), nil
	})
	if h := b.vn.Health(); h.Ready || h.Reason != ReasonNotAtollsNode {
		t.Errorf("health Ready %v, reason %q; want not Ready, %s", h.Ready, h.Reason, ReasonNotAtollsNode)
	}
	n, err := b.master.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Labels[LabelCluster]; ok || len(n.Spec.Taints) > 0 || n.Status.Conditions[0].Reason != "KubeletReady" || len(n.Annotations) > 0 {
		t.Errorf("the real node was changed: labels %v, taints %v, conditions %v, annotations %v", n.Labels, n.Spec.Taints, n.Status.Conditions, n.Annotations)
	}
	if _, err := b.master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, testNode, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a lease for the real node: %v", err)
	}
	if pods, err := b.remote.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) > 0 {
		t.Errorf("the real node's pod was delegated: %d copies (%v)", len(pods.Items), err)
	}
	select {
	case <-b.vn.Ready():
		t.Error("the virtual node started its workers for a node that is not Atoll's")
	default:
	}
}

// metricValue returns the value of a gauge or counter, or the sample count of
// a histogram, with the given labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	var failures atomic.Int32
	b := startNode(t, nil, nil, func(_, remote *fake.Clientset) {
		remote.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			if failures.Add(1) <= 2 {
				return true, nil, apierrors.NewInternalError(errors.New("boom"))
			}
			return false, nil, nil
		})
	})
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-8", "8"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := map[string]string{"node": testNode}
	eventually(t, "remote_up, delegated_pods, errors and status latency", func() (bool, error) {
		up, _ := metricValue(t, b.registry, "atoll_vnode_remote_up", node)
		pods, _ := metricValue(t, b.registry, "atoll_vnode_delegated_pods", node)
		errs, _ := metricValue(t, b.registry, "atoll_vnode_errors_total", map[string]string{"node": testNode, "kind": "create"})
		syncs, _ := metricValue(t, b.registry, "atoll_vnode_status_sync_seconds", node)
		return up == 1 && pods == 1 && errs == 2 && syncs >= 1, fmt.Errorf("up=%v pods=%v errors=%v syncs=%v", up, pods, errs, syncs)
	})
}

func TestRemoteEventsReemittedOnceAndRateLimited(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("web-9", "9"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var remote *corev1.Pod
	eventually(t, "remote pod in the node's cache", func() (bool, error) {
		var err error
		remote, err = b.vn.remote.pods.get("shop", "web-9")
		return err == nil, err
	})
	newEvent := func(name, reason, msg string) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name)},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-9", UID: remote.UID},
			Type:           corev1.EventTypeWarning, Reason: reason, Message: msg, Count: 1, LastTimestamp: metav1.Now(),
		}
	}
	// next returns the next recorded event whose text contains one of the
	// reasons of interest, skipping others (e.g. Atoll's own).
	next := func() string {
		t.Helper()
		for {
			select {
			case e := <-b.recorder.Events:
				if strings.Contains(e, "FailedScheduling") || strings.Contains(e, "Marker") {
					return e
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no event re-emitted within 10s")
			}
		}
	}
	// expectNoneBefore creates a marker event (always forwarded) and fails
	// if a FailedScheduling event is re-emitted before it: the informer
	// delivers events in order, so the marker proves what came first.
	markers := 0
	expectNoneBefore := func(why string) {
		t.Helper()
		markers++
		m := fmt.Sprintf("marker-%d", markers)
		if _, err := b.remote.CoreV1().Events("shop").Create(ctx, newEvent(m, "Marker", m), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for {
			e := next()
			if strings.Contains(e, m) {
				return
			}
			if strings.Contains(e, "FailedScheduling") {
				t.Fatalf("%s: re-emitted %q", why, e)
			}
		}
	}

	ev := newEvent("web-9.1", "FailedScheduling", "0/3 nodes are available")
	if _, err := b.remote.CoreV1().Events("shop").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := next(); !strings.Contains(e, "FailedScheduling") || !strings.Contains(e, "remote: 0/3 nodes are available") {
		t.Fatalf("re-emitted %q, want the remote FailedScheduling with its message", e)
	}
	expectNoneBefore("a new event was re-emitted twice")

	// An update that does not raise the count: not re-emitted again.
	ev.Annotations = map[string]string{"touched": "yes"}
	if _, err := b.remote.CoreV1().Events("shop").Update(ctx, ev, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectNoneBefore("an unchanged count")

	// The remote saw it again: re-emitted once more.
	ev.Count = 2
	if _, err := b.remote.CoreV1().Events("shop").Update(ctx, ev, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := next(); !strings.Contains(e, "FailedScheduling") {
		t.Fatalf("a count increase re-emitted %q, want FailedScheduling", e)
	}
	expectNoneBefore("a count increase re-emitted twice")

	// An event about a pod that is not this node's: never re-emitted.
	foreign := newEvent("other.1", "FailedScheduling", "not ours")
	foreign.InvolvedObject.Name, foreign.InvolvedObject.UID = "other", "x"
	if _, err := b.remote.CoreV1().Events("shop").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectNoneBefore("an event about a foreign pod")

	// The per-node rate limit holds a burst back (dropped and counted).
	b.vn.events.limiter.SetLimit(0.0001)
	b.vn.events.limiter.SetBurst(1)
	for i := 0; i < 5; i++ {
		e := newEvent(fmt.Sprintf("web-9.burst%d", i), "FailedScheduling", "burst")
		if _, err := b.remote.CoreV1().Events("shop").Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"node": testNode, "kind": "events"}
	eventually(t, "dropped events counted", func() (bool, error) {
		n, _ := metricValue(t, b.registry, "atoll_vnode_errors_total", labels)
		return n >= 4, fmt.Errorf("dropped %v", n)
	})
	forwarded := 0
	for len(b.recorder.Events) > 0 {
		if strings.Contains(<-b.recorder.Events, "burst") {
			forwarded++
		}
	}
	if forwarded > 1 {
		t.Fatalf("a burst of 5 re-emitted %d events with burst 1", forwarded)
	}
}

// TestDaemonSetPodNotDelegated: a DaemonSet's pod bound to the virtual
// node gets no copy, ConditionDelegated False and one Warning Event, and
// stays as it is (no churn: nothing fails, nothing is written again).
func TestDaemonSetPodNotDelegated(t *testing.T) {
	b := startNode(t, nil, nil, nil)
	ctx := context.Background()
	p := masterPod("agent-x1", "x1")
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "ds-uid", Controller: ptr.To(true)}}
	if _, err := b.master.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var rv string
	eventually(t, "Delegated=False, reason DaemonSetPod", func() (bool, error) {
		m, err := getMaster(b, "agent-x1")
		if err != nil {
			return false, err
		}
		c := findCondition(m.Status.Conditions, ConditionDelegated)
		rv = m.ResourceVersion
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonDaemonSetPod && m.Status.Phase == corev1.PodPending, nil
	})
	// Synced again and again (as every resync does), the pod is left as it is.
	eventually(t, "the node's cache to hold the condition", func() (bool, error) {
		m, err := b.vn.master.pods.get("shop", "agent-x1")
		return err == nil && m.ResourceVersion == rv, nil
	})
	for range 3 {
		if _, err := b.vn.syncPod(ctx, "shop", "agent-x1"); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := getMaster(b, "agent-x1"); err != nil || m.ResourceVersion != rv {
		t.Errorf("the pod was written again (%v)", err)
	}
	if _, err := getRemote(b, "shop", "agent-x1"); err == nil {
		t.Error("a DaemonSet pod was delegated")
	}
	var warnings int
	for len(b.recorder.Events) > 0 {
		if e := <-b.recorder.Events; contains(e, ReasonDaemonSetPod) {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d %s Events, want 1", warnings, ReasonDaemonSetPod)
	}
}

// TestTerminatingPodWaitsForLostRemote: a master pod deleted while its
// remote does not answer stays on the master past its grace period (its
// copy may still run), says why once, and goes when the remote confirms
// the copy gone, or at once when the Node gets the out-of-service taint.
func TestTerminatingPodWaitsForLostRemote(t *testing.T) {
	for _, tc := range []struct {
		name string
		// release ends the wait: the remote answers again, or the
		// operator marks the node out of service.
		release func(t *testing.T, b *testBed, down *atomic.Bool)
		// wantCopy: whether the remote copy is still there once the
		// master pod is gone.
		wantCopy bool
	}{
		{name: "remote returns", release: func(_ *testing.T, _ *testBed, down *atomic.Bool) { down.Store(false) }},
		{name: "out of service", wantCopy: true, release: func(t *testing.T, b *testBed, _ *atomic.Bool) {
			n, err := b.master.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute})
			if _, err := b.master.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			b := startNode(t, nil, nil, func(_, remote *fake.Clientset) {
				remote.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
					if down.Load() {
						return true, nil, errors.New("connection refused")
					}
					return false, nil, nil
				})
			})
			ctx := context.Background()
			if _, err := b.master.CoreV1().Pods("shop").Create(ctx, masterPod("db-0", "d0"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "master pod marked Delegated", func() (bool, error) {
				m, err := getMaster(b, "db-0")
				return err == nil && hasCondition(m, ConditionDelegated), err
			})
			down.Store(true)
			eventually(t, "the remote seen as unreachable", func() (bool, error) {
				return !b.vn.healthy.Load(), nil
			})
			// Deleted (as taint eviction does) with its grace period over.
			m, err := getMaster(b, "db-0")
			if err != nil {
				t.Fatal(err)
			}
			m.DeletionTimestamp = &metav1.Time{Time: time.Now().Add(-time.Second)}
			m.DeletionGracePeriodSeconds = ptr.To(int64(0))
			if _, err := b.master.CoreV1().Pods("shop").Update(ctx, m, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "RemoteReachable=False CopyFateUnknown on the master pod", func() (bool, error) {
				m, err := getMaster(b, "db-0")
				if err != nil {
					return false, err
				}
				c := findCondition(m.Status.Conditions, ConditionRemoteReachable)
				return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonCopyFateUnknown, nil
			})
			// Synced again (as the recheck does), the pod stays.
			eventually(t, "the node's cache to hold the condition", func() (bool, error) {
				m, err := b.vn.master.pods.get("shop", "db-0")
				return err == nil && findCondition(m.Status.Conditions, ConditionRemoteReachable) != nil, nil
			})
			for range 3 {
				if _, err := b.vn.syncPod(ctx, "shop", "db-0"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := getMaster(b, "db-0"); err != nil {
				t.Fatalf("the master pod of a lost remote was deleted: %v", err)
			}
			for _, a := range b.master.Actions() {
				if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
					t.Fatalf("master pod deleted while its copy's fate is unknown: %v", a)
				}
			}
			var warnings int
			for len(b.recorder.Events) > 0 {
				if e := <-b.recorder.Events; contains(e, ReasonCopyFateUnknown) {
					warnings++
				}
			}
			if warnings != 1 {
				t.Errorf("%d %s Events, want 1", warnings, ReasonCopyFateUnknown)
			}

			tc.release(t, b, &down)
			eventually(t, "master pod removed", func() (bool, error) {
				_, err := getMaster(b, "db-0")
				return apierrors.IsNotFound(err), nil
			})
			if _, err := getRemote(b, "shop", "db-0"); (err == nil) != tc.wantCopy {
				t.Errorf("remote copy there = %v once the master pod is gone, want %v", err == nil, tc.wantCopy)
			}
		})
	}
}
