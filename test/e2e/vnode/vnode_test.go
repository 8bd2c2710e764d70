package vnode_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

// waitFullCapacity waits until both virtual nodes are Ready and offer all of
// their remote's 3 kwok nodes of 32 CPUs. (In the bed kwok's nodes drop to
// NotReady for a few seconds now and then; a virtual node reports that
// honestly, and tests that need both nodes whole wait for it.)
func waitFullCapacity(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 2*time.Minute, "both virtual nodes Ready with allocatable cpu 96", func(ctx context.Context) (bool, error) {
		for name := range nodes {
			n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if cpu := n.Status.Allocatable.Cpu(); !fleettest.IsNodeReady(n) || cpu.Cmp(resource.MustParse("96")) != 0 {
				return false, fmt.Errorf("node %s: ready=%v allocatable cpu=%s", name, fleettest.IsNodeReady(n), cpu)
			}
		}
		return true, nil
	})
}

func TestVirtualNodesRegistered(t *testing.T) {
	ctx := testenv.Context(t)
	// Allocatable is the sum over the remote's kwok nodes, nothing else runs there.
	waitFullCapacity(t)
	for name := range nodes {
		n, err := master.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"type": "virtual-kubelet", "kubernetes.io/role": "agent", vnode.LabelCluster: name} {
			if n.Labels[k] != v {
				t.Errorf("node %s: label %s = %q, want %q", name, k, n.Labels[k], v)
			}
		}
		lease, err := master.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %s lease: %v", name, err)
		}
		if lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > time.Minute {
			t.Errorf("node %s lease not renewed: %v", name, lease.Spec.RenewTime)
		}
	}
}

// TestMetrics scrapes the node process's /metrics.
func TestMetrics(t *testing.T) {
	ns := namespace(t)
	node := env.Remotes[0].Name
	runPod(t, ns, "measured", node)
	want := []string{
		`atoll_vnode_remote_up{node="` + node + `"} 1`,
		`atoll_vnode_delegated_pods{node="` + node + `"}`,
		`atoll_vnode_status_sync_seconds_count{node="` + node + `"}`,
		`atoll_vnode_status_sync_seconds_bucket{node="` + node + `",le="0.25"}`,
	}
	testenv.WaitFor(t, time.Minute, "metrics", func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nodes[node].metricsAddr+"/metrics", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				return false, fmt.Errorf("no %s in /metrics", w)
			}
		}
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, `atoll_vnode_delegated_pods{node="`+node+`"} `) && strings.HasSuffix(line, " 0") {
				return false, fmt.Errorf("%s", line)
			}
		}
		return true, nil
	})
}

func TestDeploymentRunsSpreadOverVirtualNodes(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(20)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
	waitFullCapacity(t)
	if _, err := master.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	testenv.WaitFor(t, 3*time.Minute, "20 Running pods", func(ctx context.Context) (bool, error) {
		list, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		pods = list.Items
		return running == 20 && len(list.Items) == 20, fmt.Errorf("%d of %d running", running, len(list.Items))
	})
	perNode := map[string]int{}
	for i := range pods {
		p := &pods[i]
		perNode[p.Spec.NodeName]++
		remote, err := remotePod(ctx, p)
		if err != nil {
			t.Fatalf("remote copy of %s: %v", p.Name, err)
		}
		checkAtollLabels(t, p, remote)
	}
	// Status is mirrored: phase, IP and Ready as the remote has them. (Ready
	// is not asserted True: the remote's node lifecycle controller may mark
	// kwok pods not ready when kwok's node heartbeats lapse; that is the
	// remote's truth and must show in the master too.)
	testenv.WaitFor(t, time.Minute, "master statuses mirror remote statuses", func(ctx context.Context) (bool, error) {
		list, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		for i := range list.Items {
			p := &list.Items[i]
			remote, err := remotePod(ctx, p)
			if err != nil {
				return false, err
			}
			mr, rr := condition(p, corev1.PodReady), condition(remote, corev1.PodReady)
			if p.Status.Phase != remote.Status.Phase || p.Status.PodIP != remote.Status.PodIP || mr == nil || rr == nil || mr.Status != rr.Status {
				return false, fmt.Errorf("pod %s: master %s/%s/%v, remote %s/%s/%v", p.Name,
					p.Status.Phase, p.Status.PodIP, mr, remote.Status.Phase, remote.Status.PodIP, rr)
			}
		}
		return true, nil
	})
	if len(perNode) != 2 || perNode[env.Remotes[0].Name] == 0 || perNode[env.Remotes[1].Name] == 0 {
		t.Fatalf("pods per node = %v, want spread over both virtual nodes", perNode)
	}
}

func TestJobCompletes(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(int32(2)), Parallelism: ptr.To(int32(2)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "work", Image: "registry.example/work:1"}},
			}},
		},
	}
	if _, err := master.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 3*time.Minute, "Job Complete", func(ctx context.Context) (bool, error) {
		j, err := master.BatchV1().Jobs(ns).Get(ctx, "batch", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("succeeded=%d", j.Status.Succeeded)
	})
}

func TestFailingCommandFails(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	p := simplePod(ns, "fails", "")
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	p.Spec.Containers[0].Command = []string{"false"}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "pod Failed", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "fails")
		if err != nil {
			return false, err
		}
		if p.Status.Phase != corev1.PodFailed {
			return false, fmt.Errorf("phase %s", p.Status.Phase)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode == 0 {
				return false, fmt.Errorf("container %s not failed: %+v", cs.Name, cs.State)
			}
		}
		return len(p.Status.ContainerStatuses) == 1, nil
	})
}

func TestDependenciesCopiedSyncedCollected(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	fleettest.BindDependencies(t, master, ns)
	node := env.Remotes[0].Name
	rc := remotes[node]
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config", Namespace: ns}, Data: map[string]string{"mode": "v1"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: ns}, StringData: map[string]string{"password": "hunter2"}}
	if _, err := master.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := master.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := simplePod(ns, "web", node)
	p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/web"}}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "password"}}}}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "pod Running", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "web")
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	rcm, err := rc.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || rcm.Data["mode"] != "v1" || rcm.Labels[vnode.LabelMaster] != masterID {
		t.Fatalf("remote ConfigMap = %+v, %v", rcm, err)
	}
	rsec, err := rc.CoreV1().Secrets(ns).Get(ctx, "web-secret", metav1.GetOptions{})
	if err != nil || string(rsec.Data["password"]) != "hunter2" || rsec.Labels[vnode.LabelMaster] != masterID {
		t.Fatalf("remote Secret: %v", err)
	}
	// The master's service-account token volume is not copied.
	rp, err := rc.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := getPod(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range mp.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") {
			for _, rv := range rp.Spec.Volumes {
				if rv.Name == v.Name {
					t.Errorf("master token volume %s copied to the remote", v.Name)
				}
			}
		}
	}

	cm.Data["mode"] = "v2"
	if _, err := master.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 90*time.Second, "ConfigMap edit reaches the copy", func(ctx context.Context) (bool, error) {
		rcm, err := rc.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
		return err == nil && rcm.Data["mode"] == "v2", err
	})
	if err := master.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 90*time.Second, "copies collected", func(ctx context.Context) (bool, error) {
		_, err1 := rc.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
		_, err2 := rc.CoreV1().Secrets(ns).Get(ctx, "web-secret", metav1.GetOptions{})
		return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), nil
	})
}

func TestMissingConfigMapLeavesPodPending(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	fleettest.BindDependencies(t, master, ns)
	p := simplePod(ns, "needs-config", env.Remotes[0].Name)
	p.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "later"}}}},
		{Name: "opt", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "never", Optional: ptr.To(true)}}},
	}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "DependenciesReady=False and an Event", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "needs-config")
		if err != nil {
			return false, err
		}
		c := condition(p, vnode.ConditionDependenciesReady)
		if c == nil || c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "later") || p.Status.Phase != corev1.PodPending {
			return false, fmt.Errorf("condition %+v phase %s", c, p.Status.Phase)
		}
		evs, err := master.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=needs-config,reason=FailedDependency"})
		return err == nil && len(evs.Items) > 0, err
	})
	if _, err := remotes[env.Remotes[0].Name].CoreV1().Pods(ns).Get(ctx, "needs-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod created remotely before its ConfigMap exists: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns}, Data: map[string]string{"k": "v"}}
	if _, err := master.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "pod Running once the ConfigMap exists (optional Secret skipped)", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "needs-config")
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
}

// TestDependenciesReadOnlyWhereBound: Atoll may read ConfigMaps and
// Secrets only in the namespaces that bind it deploy/master's ClusterRole
// atoll-pod-dependencies. A pod whose Secret lies elsewhere waits, its
// condition saying what to bind, and nothing of it reaches the remote;
// once the namespace binds the role, the pod runs with its Secret copied.
func TestDependenciesReadOnlyWhereBound(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: ns}, StringData: map[string]string{"password": "hunter2"}}
	if _, err := master.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := simplePod(ns, "web", node)
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "password"}}}}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "DependenciesReady=False, DependenciesForbidden", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "web")
		if err != nil {
			return false, err
		}
		c := condition(p, vnode.ConditionDependenciesReady)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == vnode.ReasonDependenciesForbidden &&
			strings.Contains(c.Message, "secrets of namespace "+ns) && strings.Contains(c.Message, vnode.DependenciesRole) &&
			p.Status.Phase == corev1.PodPending, fmt.Errorf("condition %+v phase %s", c, p.Status.Phase)
	})
	rc := remotes[node]
	if _, err := rc.CoreV1().Secrets(ns).Get(ctx, "web-secret", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Secret reached the remote without the rights to read it: %v", err)
	}
	if _, err := rc.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the pod reached the remote without its Secret: %v", err)
	}
	fleettest.BindDependencies(t, master, ns)
	testenv.WaitFor(t, 2*time.Minute, "pod Running with its Secret copied once the namespace binds the role", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "web")
		if err != nil {
			return false, err
		}
		s, err := rc.CoreV1().Secrets(ns).Get(ctx, "web-secret", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == "hunter2" && p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s, copy: %v", p.Status.Phase, err)
	})
}

func TestMasterDeleteRemovesRemote(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[1].Name
	runPod(t, ns, "short", node)
	if err := master.CoreV1().Pods(ns).Delete(ctx, "short", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "remote and master pod gone", func(ctx context.Context) (bool, error) {
		_, errR := remotes[node].CoreV1().Pods(ns).Get(ctx, "short", metav1.GetOptions{})
		_, errM := getPod(ctx, ns, "short")
		return apierrors.IsNotFound(errR) && apierrors.IsNotFound(errM), nil
	})
}

// TestPodOfOtherNodeLeftAlone: Atoll watches every bound master pod (one
// watch for all its virtual nodes) but acts only on pods of its own nodes:
// a pod bound to an ordinary Node is neither copied nor given a status.
func TestPodOfOtherNodeLeftAlone(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	const worker = "e2e-plain-worker"
	if _, err := master.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: worker}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// No kubelet confirms a graceful delete on this node.
		_ = master.CoreV1().Pods(ns).Delete(ctx, "elsewhere", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		_ = master.CoreV1().Nodes().Delete(ctx, worker, metav1.DeleteOptions{})
	})
	if _, err := master.CoreV1().Pods(ns).Create(ctx, simplePod(ns, "elsewhere", worker), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod of a virtual node, made after it, goes the whole way first.
	runPod(t, ns, "witness", env.Remotes[0].Name)
	p, err := getPod(ctx, ns, "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if c := condition(p, vnode.ConditionDelegated); c != nil || p.Status.Phase != corev1.PodPending {
		t.Errorf("pod on %s: phase %s, Delegated condition %+v; want Pending and none", worker, p.Status.Phase, c)
	}
	for name, rc := range remotes {
		if _, err := rc.CoreV1().Pods(ns).Get(ctx, "elsewhere", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("remote of %s holds a copy of the pod on %s (err %v)", name, worker, err)
		}
	}
}

func TestRemoteDeleteFailsAndReplaces(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "solo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "solo"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "solo", Image: "registry.example/solo:1"}}},
			},
		},
	}
	if _, err := master.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var first corev1.Pod
	testenv.WaitFor(t, 2*time.Minute, "pod Running", func(ctx context.Context) (bool, error) {
		list, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=solo"})
		if err != nil || len(list.Items) != 1 {
			return false, err
		}
		first = list.Items[0]
		return first.Status.Phase == corev1.PodRunning, nil
	})
	if err := remotes[first.Spec.NodeName].CoreV1().Pods(ns).Delete(ctx, first.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "master pod Failed RemoteDeleted", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, first.Name)
		return err == nil && p.Status.Phase == corev1.PodFailed && p.Status.Reason == vnode.ReasonRemoteDeleted, err
	})
	testenv.WaitFor(t, 2*time.Minute, "replacement Running", func(ctx context.Context) (bool, error) {
		list, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=solo"})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.UID != first.UID && p.Status.Phase == corev1.PodRunning {
				return true, nil
			}
		}
		return false, nil
	})
}

func TestNameConflictLeavesForeignPodUntouched(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	rc := remotes[node]
	if _, err := rc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "remote default service account", func(ctx context.Context) (bool, error) {
		_, err := rc.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	foreign := simplePod(ns, "clash", "")
	foreign.Labels = map[string]string{"owner": "someone-else"}
	foreign, err := rc.CoreV1().Pods(ns).Create(ctx, foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, simplePod(ns, "clash", node), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "NameConflict condition", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "clash")
		if err != nil {
			return false, err
		}
		c := condition(p, vnode.ConditionNameConflict)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == "NameConflict", nil
	})
	got, err := rc.CoreV1().Pods(ns).Get(ctx, "clash", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != foreign.UID || got.DeletionTimestamp != nil || got.Labels[vnode.LabelMaster] != "" || got.Labels["owner"] != "someone-else" {
		t.Fatalf("foreign pod was touched: %+v", got.ObjectMeta)
	}
}

func TestRemoteSchedulingFailureShown(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	p := simplePod(ns, "too-big", "")
	// More than any one kwok node (32), less than the virtual node (96).
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("40")}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "RemoteScheduled=False with the remote scheduler's reason", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "too-big")
		if err != nil {
			return false, err
		}
		if c := condition(p, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue {
			return false, fmt.Errorf("master PodScheduled = %+v", c)
		}
		c := condition(p, vnode.ConditionRemoteScheduled)
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "Unschedulable" || !strings.Contains(c.Message, "Insufficient cpu") {
			return false, fmt.Errorf("RemoteScheduled = %+v", c)
		}
		return true, nil
	})
	testenv.WaitFor(t, time.Minute, "remote FailedScheduling Event re-emitted", func(ctx context.Context) (bool, error) {
		evs, err := master.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=too-big,reason=FailedScheduling"})
		return err == nil && len(evs.Items) > 0, err
	})
}

// TestRemoteUnreachable stops a remote's apiserver. Nothing is deleted
// while it is away. Pods Kubernetes' taint eviction deletes meanwhile stay
// on the master, terminating, since their copies may still run: a
// ReplicaSet replaces its pod at once, a StatefulSet waits until the
// operator marks the node out of service. When the remote returns, the
// evicted pods' copies are deleted, then their master pods.
func TestRemoteUnreachable(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	cluster := env.Remotes[1]
	node := cluster.Name
	// The survivor tolerates the out-of-service taint this test puts on
	// the node for a while, and an unready node for the default 300s.
	survivor := simplePod(ns, "survivor", node)
	survivor.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeOutOfService, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, survivor, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// These tolerate an unready node for 2s only: taint eviction deletes
	// them while the remote is away.
	evictable := func(p corev1.PodSpec) corev1.PodSpec {
		p.TerminationGracePeriodSeconds = ptr.To(int64(1))
		p.Tolerations = []corev1.Toleration{
			{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(2))},
			{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(2))},
		}
		return p
	}
	evicted := simplePod(ns, "evicted", node)
	evicted.Spec = evictable(evicted.Spec)
	if _, err := master.CoreV1().Pods(ns).Create(ctx, evicted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	template := func(app string) corev1.PodTemplateSpec {
		p := simplePod(ns, app, "")
		p.Spec.NodeSelector = map[string]string{vnode.LabelCluster: node}
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: p.Labels}, Spec: evictable(p.Spec)}
	}
	selector := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "stateless", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(1)), Selector: selector("stateless"), Template: template("stateless")}}
	if _, err := master.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(1)), Selector: selector("db"), Template: template("db")}}
	if _, err := master.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func(ctx context.Context, app string) ([]corev1.Pod, error) {
		l, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return nil, err
		}
		var out []corev1.Pod
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
		return out, nil
	}
	var before, evictedRemote *corev1.Pod
	var stateless, db corev1.Pod
	testenv.WaitFor(t, 2*time.Minute, "pods Running", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "survivor")
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return false, err
		}
		e, err := getPod(ctx, ns, "evicted")
		if err != nil || e.Status.Phase != corev1.PodRunning {
			return false, err
		}
		for app, into := range map[string]*corev1.Pod{"stateless": &stateless, "db": &db} {
			l, err := running(ctx, app)
			if err != nil || len(l) != 1 {
				return false, err
			}
			*into = l[0]
		}
		if before, err = remotePod(ctx, p); err != nil {
			return false, err
		}
		evictedRemote, err = remotePod(ctx, e)
		return err == nil, err
	})
	stopped := time.Now()
	stopAPIServer(ctx, t, cluster)
	testenv.WaitFor(t, 40*time.Second, "node NotReady", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && !fleettest.IsNodeReady(n), err
	})
	t.Logf("node NotReady %s after the remote apiserver began to stop", time.Since(stopped).Round(time.Second))
	// Evicted, past their grace period, and still there: Atoll says why.
	for _, name := range []string{"evicted", stateless.Name, db.Name} {
		testenv.WaitFor(t, 2*time.Minute, name+" evicted and held: RemoteReachable=False", func(ctx context.Context) (bool, error) {
			p, err := getPod(ctx, ns, name)
			if err != nil {
				return false, err
			}
			if c := condition(p, vnode.ConditionRemoteReachable); c == nil || c.Status != corev1.ConditionFalse || c.Reason != vnode.ReasonCopyFateUnknown {
				return false, fmt.Errorf("deletionTimestamp %v, RemoteReachable %+v", p.DeletionTimestamp, c)
			}
			return p.DeletionTimestamp != nil && time.Now().After(p.DeletionTimestamp.Time), nil
		})
	}
	// The ReplicaSet has replaced its pod (the replacement waits for a
	// node); the StatefulSet has not: its one pod is still the one it had.
	testenv.WaitFor(t, time.Minute, "the ReplicaSet's replacement", func(ctx context.Context) (bool, error) {
		l, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=stateless"})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			if p.UID != stateless.UID && p.DeletionTimestamp == nil {
				return true, nil
			}
		}
		return false, nil
	})
	if p, err := getPod(ctx, ns, db.Name); err != nil || p.UID != db.UID {
		t.Fatalf("the StatefulSet's pod of a lost remote was replaced (%v): two pods could hold one identity", err)
	}
	// The operator declares the remote's pods dead: the StatefulSet's
	// pod goes and the StatefulSet makes it again.
	setOutOfService(t, node, true)
	testenv.WaitFor(t, time.Minute, "the StatefulSet's pod made again", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, db.Name)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && p.UID != db.UID, err
	})
	setOutOfService(t, node, false)

	if err := cluster.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitNodeReady(ctx, node, time.Minute); err != nil {
		t.Fatalf("node Ready again: %v", err)
	}
	// Nothing was deleted while the remote was away: the survivor is the
	// same pod; the evicted pod's copy is collected now that it is back,
	// and then its master pod goes.
	after, err := remotes[node].CoreV1().Pods(ns).Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil || after.UID != before.UID || after.DeletionTimestamp != nil {
		t.Fatalf("remote pod not intact: %v", err)
	}
	p, err := getPod(ctx, ns, "survivor")
	if err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("master pod not intact: %v", err)
	}
	testenv.WaitFor(t, 90*time.Second, "the evicted pod's remote copy collected, then its master pod", func(ctx context.Context) (bool, error) {
		r, err := remotes[node].CoreV1().Pods(ns).Get(ctx, "evicted", metav1.GetOptions{})
		switch {
		case err == nil && r.UID != evictedRemote.UID:
			return false, fmt.Errorf("a different pod named evicted exists remotely")
		case err == nil:
			return false, nil
		case !apierrors.IsNotFound(err):
			return false, err
		}
		_, err = getPod(ctx, ns, "evicted")
		return apierrors.IsNotFound(err), nil
	})
	// Each workload's one live pod is delegated again: the StatefulSet's
	// new pod has a copy of its own (the old copy, made by the pod the
	// out-of-service taint removed, was replaced).
	testenv.WaitFor(t, 2*time.Minute, "each workload's live pod delegated", func(ctx context.Context) (bool, error) {
		for _, app := range []string{"stateless", "db"} {
			l, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			if err != nil {
				return false, err
			}
			var live []corev1.Pod
			for _, p := range l.Items {
				if p.DeletionTimestamp == nil {
					live = append(live, p)
				}
			}
			if len(live) != 1 || live[0].Spec.NodeName != node {
				return false, podsOf(ctx, ns, "app="+app, nil)
			}
			r, err := remotePod(ctx, &live[0])
			if err != nil || r.Labels[vnode.LabelOriginUID] != string(live[0].UID) {
				return false, podsOf(ctx, ns, "app="+app, err)
			}
		}
		return true, nil
	})
}

// podsOf returns err, or an error listing the master pods of selector in
// ns with their phase, node and deletion: what a wait for them last saw.
func podsOf(ctx context.Context, ns, selector string, err error) error {
	if err != nil {
		return err
	}
	l, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, p := range l.Items {
		fmt.Fprintf(&b, "%s %s on %q deleting=%v", p.Name, p.Status.Phase, p.Spec.NodeName, p.DeletionTimestamp != nil)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
		}
		if r, err := remotePod(ctx, &p); err == nil {
			fmt.Fprintf(&b, " (remote: %s on %q", r.Status.Phase, r.Spec.NodeName)
			for _, c := range r.Status.Conditions {
				fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
			}
			b.WriteString(")")
		}
		b.WriteString("; ")
	}
	return fmt.Errorf("%s: %s", selector, b.String())
}

// setOutOfService puts the node.kubernetes.io/out-of-service taint on a
// node or takes it off again (and off at the end of the test).
func setOutOfService(t *testing.T, node string, on bool) {
	t.Helper()
	update := func(ctx context.Context, on bool) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := master.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeOutOfService })
			if on {
				n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute})
			}
			_, err = master.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
	}
	if err := update(testenv.Context(t), on); err != nil {
		t.Fatal(err)
	}
	if on {
		t.Cleanup(func() { _ = update(context.Background(), false) })
	}
}

// TestRestartDuringChurn kills the node process (SIGKILL) in the middle of
// 100 pod creates and deletes, restarts it, and checks that there is no
// duplicate and no orphan and that every status matches.
func TestRestartDuringChurn(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	proc := nodes[node]
	const total = 100
	var wg sync.WaitGroup
	errs := make(chan error, total)
	create := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, err := master.CoreV1().Pods(ns).Create(ctx, simplePod(ns, fmt.Sprintf("churn-%03d", i), node), metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
	}
	deleteEven := func(from, to int) {
		for i := from; i < to; i += 2 {
			if err := master.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("churn-%03d", i), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs <- err
			}
		}
	}
	rc := remotes[node]
	create(0, 40)
	deleteEven(0, 20)
	// Kill in mid-flight: some copies exist, others not yet.
	testenv.WaitFor(t, time.Minute, "first remote copies", func(ctx context.Context) (bool, error) {
		l, err := rc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) >= 5, err
	})
	proc.Kill()
	create(40, 100)
	deleteEven(20, 60)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("churn: %v", err)
	}
	remaining := map[string]bool{}
	for i := 0; i < total; i++ {
		if i < 60 && i%2 == 0 {
			continue
		}
		remaining[fmt.Sprintf("churn-%03d", i)] = true
	}
	testenv.WaitFor(t, 3*time.Minute, "master pods match remote pods, 0 orphans", func(ctx context.Context) (bool, error) {
		mlist, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		rlist, err := rc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(labels.Set{vnode.LabelMaster: masterID}).String()})
		if err != nil {
			return false, err
		}
		byUID := map[string]corev1.Pod{}
		for _, r := range rlist.Items {
			uid := r.Labels[vnode.LabelOriginUID]
			if _, dup := byUID[uid]; dup {
				return false, fmt.Errorf("duplicate remote pods for origin %s", uid)
			}
			byUID[uid] = r
		}
		if len(mlist.Items) != len(remaining) {
			return false, fmt.Errorf("%d master pods, want %d", len(mlist.Items), len(remaining))
		}
		for _, m := range mlist.Items {
			if !remaining[m.Name] {
				return false, fmt.Errorf("master pod %s should be gone", m.Name)
			}
			r, ok := byUID[string(m.UID)]
			if !ok {
				return false, fmt.Errorf("no remote pod for %s", m.Name)
			}
			if m.Status.Phase != corev1.PodRunning || r.Status.Phase != m.Status.Phase || r.Status.PodIP != m.Status.PodIP {
				return false, fmt.Errorf("%s: master %s/%s, remote %s/%s", m.Name, m.Status.Phase, m.Status.PodIP, r.Status.Phase, r.Status.PodIP)
			}
		}
		if len(rlist.Items) != len(remaining) {
			return false, fmt.Errorf("%d remote pods, want %d (orphans)", len(rlist.Items), len(remaining))
		}
		return true, nil
	})
}

// TestCreateRefusedByRemoteQuota: the remote's admission refuses the pod (a
// ResourceQuota there); the master pod says so, and the pod is created once
// the quota allows it.
func TestCreateRefusedByRemoteQuota(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	rc := remotes[node]
	if _, err := rc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods", Namespace: ns},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
	}
	if _, err := rc.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "quota in force", func(ctx context.Context) (bool, error) {
		q, err := rc.CoreV1().ResourceQuotas(ns).Get(ctx, "no-pods", metav1.GetOptions{})
		return err == nil && q.Status.Hard != nil, err
	})
	if _, err := master.CoreV1().Pods(ns).Create(ctx, simplePod(ns, "refused", node), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "RemoteCreated=False with the remote's reason, and an Event", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "refused")
		if err != nil {
			return false, err
		}
		c := condition(p, vnode.ConditionRemoteCreated)
		if c == nil || c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "exceeded quota") {
			return false, fmt.Errorf("condition %+v", c)
		}
		evs, err := master.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=refused,reason=RemoteCreateFailed"})
		return err == nil && len(evs.Items) > 0, err
	})
	if err := rc.CoreV1().ResourceQuotas(ns).Delete(ctx, "no-pods", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "pod Running after the quota is lifted", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "refused")
		if err != nil {
			return false, err
		}
		// The problem condition goes once the pod is delegated.
		return p.Status.Phase == corev1.PodRunning && condition(p, vnode.ConditionRemoteCreated) == nil, nil
	})
}

// TestClaimsNotCopiedWarned: a pod mounting a PersistentVolumeClaim is
// delegated as it is, with a Warning Event and a condition saying the
// claim must exist in the remote cluster.
func TestClaimsNotCopiedWarned(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	p := simplePod(ns, "with-claim", env.Remotes[0].Name)
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "with-claim-data"}}}}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "ClaimsCopied=False and a Warning Event", func(ctx context.Context) (bool, error) {
		p, err := getPod(ctx, ns, "with-claim")
		if err != nil {
			return false, err
		}
		c := condition(p, vnode.ConditionClaimsCopied)
		if c == nil || c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "with-claim-data") {
			return false, fmt.Errorf("condition %+v", c)
		}
		evs, err := master.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=with-claim,reason=" + vnode.ReasonClaimsNotCopied})
		return err == nil && len(evs.Items) > 0 && evs.Items[0].Type == corev1.EventTypeWarning, err
	})
	if _, err := remotes[env.Remotes[0].Name].CoreV1().Pods(ns).Get(ctx, "with-claim", metav1.GetOptions{}); err != nil {
		t.Fatalf("the pod was not delegated: %v", err)
	}
}

// TestDaemonSetPodsNotDelegated: an unchanged DaemonSet in the master puts
// a pod on the virtual node; it is not copied to the remote, says why
// (Delegated=False, a Warning Event) and is left alone: not failed, so the
// DaemonSet controller does not replace it again and again.
func TestDaemonSetPodsNotDelegated(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: node},
					Containers:   []corev1.Container{{Name: "agent", Image: "registry.example/agent:1"}},
				},
			},
		},
	}
	if _, err := master.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var first *corev1.Pod
	testenv.WaitFor(t, time.Minute, "the DaemonSet's pod on "+node+" with Delegated=False and a Warning Event", func(ctx context.Context) (bool, error) {
		list, err := master.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
		if err != nil || len(list.Items) != 1 {
			return false, err
		}
		p := &list.Items[0]
		c := condition(p, vnode.ConditionDelegated)
		if p.Spec.NodeName != node || c == nil || c.Status != corev1.ConditionFalse || c.Reason != vnode.ReasonDaemonSetPod {
			return false, fmt.Errorf("pod on %q, condition %+v", p.Spec.NodeName, c)
		}
		first = p
		evs, err := master.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name + ",reason=" + vnode.ReasonDaemonSetPod})
		return err == nil && len(evs.Items) == 1 && evs.Items[0].Type == corev1.EventTypeWarning, err
	})
	if l, err := remotes[node].CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Fatalf("remote pods in %s: %d (%v), want none", ns, len(l.Items), err)
	}
	// No churn: the same pod, Pending, after the DaemonSet controller has
	// seen its status (observedGeneration and the pod counted, unavailable).
	testenv.WaitFor(t, time.Minute, "the DaemonSet to count its pod, unavailable", func(ctx context.Context) (bool, error) {
		d, err := master.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.CurrentNumberScheduled == 1 && d.Status.NumberUnavailable == 1, err
	})
	p, err := getPod(ctx, ns, first.Name)
	if err != nil {
		t.Fatalf("the DaemonSet's pod is gone: %v", err)
	}
	if p.UID != first.UID || p.Status.Phase != corev1.PodPending {
		t.Errorf("the DaemonSet's pod changed: UID %s (was %s), phase %s", p.UID, first.UID, p.Status.Phase)
	}
}

// TestDroppedLabelsDroppedFromCopy: a label and an annotation dropped from
// a master pod are dropped from its remote copy; a label the remote added
// and the master pod's other labels stay.
func TestDroppedLabelsDroppedFromCopy(t *testing.T) {
	ctx := testenv.Context(t)
	ns := namespace(t)
	node := env.Remotes[0].Name
	rc := remotes[node]
	p := simplePod(ns, "labelled", node)
	p.Labels["tier"] = "gold"
	p.Annotations = map[string]string{"example.com/note": "hello"}
	if _, err := master.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "copy with the label and annotation", func(ctx context.Context) (bool, error) {
		r, err := rc.CoreV1().Pods(ns).Get(ctx, "labelled", metav1.GetOptions{})
		return err == nil && r.Labels["tier"] == "gold" && r.Annotations["example.com/note"] == "hello", err
	})
	// kwok writes the copy's status meanwhile: edits retry on conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r, err := rc.CoreV1().Pods(ns).Get(ctx, "labelled", metav1.GetOptions{})
		if err != nil {
			return err
		}
		r.Labels["remote.example/added"] = "yes"
		_, err = rc.CoreV1().Pods(ns).Update(ctx, r, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := getPod(ctx, ns, "labelled")
		if err != nil {
			return err
		}
		delete(m.Labels, "tier")
		delete(m.Annotations, "example.com/note")
		m.Labels["version"] = "2"
		_, err = master.CoreV1().Pods(ns).Update(ctx, m, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "dropped label and annotation gone from the copy, the rest kept", func(ctx context.Context) (bool, error) {
		r, err := rc.CoreV1().Pods(ns).Get(ctx, "labelled", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, tier := r.Labels["tier"]
		_, note := r.Annotations["example.com/note"]
		ok := !tier && !note && r.Labels["version"] == "2" && r.Labels["app"] == "labelled" &&
			r.Labels["remote.example/added"] == "yes" && r.Labels[vnode.LabelNode] == node
		return ok, fmt.Errorf("labels %v, annotations %v", r.Labels, r.Annotations)
	})
}
