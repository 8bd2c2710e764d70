package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/vnode"
)

// benchLabel marks the bench's pods.
const benchLabel = "atoll.dev/bench"

// createWorkers is how many pods are created at once, Atoll's own number of
// workers per virtual node.
const createWorkers = vnode.DefaultWorkers

// benchPod is the pod the bench creates: one container, no requests;
// nodeName binds it (empty: the cluster's scheduler places it).
func benchPod(ns, name, nodeName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{benchLabel: "true", "app": "bench"}},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
}

func podName(i int) string { return fmt.Sprintf("pod-%05d", i) }

// createPods creates pods podName(from) .. podName(to-1) in ns with
// createWorkers at a time.
func createPods(ctx context.Context, client kubernetes.Interface, ns string, from, to int, nodeName string) error {
	return eachPod(ctx, from, to, func(ctx context.Context, name string) error {
		_, err := client.CoreV1().Pods(ns).Create(ctx, benchPod(ns, name, nodeName), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
		}
		return nil
	})
}

// deletePods force-deletes pods podName(from) .. podName(to-1) in ns with
// createWorkers at a time.
func deletePods(ctx context.Context, client kubernetes.Interface, ns string, from, to int) error {
	zero := int64(0)
	return eachPod(ctx, from, to, func(ctx context.Context, name string) error {
		err := client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
		}
		return nil
	})
}

// eachPod calls do for podName(from) .. podName(to-1), createWorkers at a
// time, each call with a 30 s timeout; the first error stops it.
func eachPod(ctx context.Context, from, to int, do func(ctx context.Context, name string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make(chan int)
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := withTimeout(ctx, 30*time.Second, func(ctx context.Context) error { return do(ctx, podName(i)) }); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	go func() {
		defer close(idx)
		for i := from; i < to; i++ {
			select {
			case idx <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return <-errs
}

func withTimeout(ctx context.Context, d time.Duration, call func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return call(cctx)
}

// podWatch is an informer on one namespace's bench pods. Each add or update
// is handed to the handlers with the time it arrived.
type podWatch struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
}

func watchPods(ctx context.Context, client kubernetes.Interface, ns string, handle func(p *corev1.Pod, at time.Time)) (*podWatch, error) {
	lw := cache.NewFilteredListWatchFromClient(client.CoreV1().RESTClient(), "pods", ns, func(o *metav1.ListOptions) {
		o.LabelSelector = benchLabel + "=true"
	})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	on := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			handle(p, time.Now())
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: on, UpdateFunc: func(_, n any) { on(n) }}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("watch pods in %s: cache did not sync", ns)
	}
	return &podWatch{inf: inf, cancel: cancel}, nil
}

func (w *podWatch) stop() { w.cancel() }

// allRunning watches ns until pods [from, to) have all been seen Running;
// the channel then receives when the last was. stop ends the watch.
func allRunning(ctx context.Context, client kubernetes.Interface, ns string, from, to int) (all <-chan time.Time, count func() int, stop func(), err error) {
	var mu sync.Mutex
	running := map[string]bool{}
	done := make(chan time.Time, 1)
	want := map[string]bool{}
	for i := from; i < to; i++ {
		want[podName(i)] = true
	}
	w, err := watchPods(ctx, client, ns, func(p *corev1.Pod, at time.Time) {
		if p.Status.Phase != corev1.PodRunning || !want[p.Name] {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if running[p.Name] {
			return
		}
		running[p.Name] = true
		if len(running) == len(want) {
			done <- at
		}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	count = func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(running)
	}
	return done, count, w.stop, nil
}

// timeRunning creates pods [from, to) in ns and returns the time from the
// first create until all of them are seen Running.
func timeRunning(ctx context.Context, client kubernetes.Interface, ns string, from, to int, nodeName string, timeout time.Duration) (time.Duration, error) {
	all, count, stop, err := allRunning(ctx, client, ns, from, to)
	if err != nil {
		return 0, err
	}
	defer stop()
	start := time.Now()
	if err := createPods(ctx, client, ns, from, to, nodeName); err != nil {
		return 0, err
	}
	select {
	case at := <-all:
		return at.Sub(start), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%d of %d pods in %s Running after %s", count(), to-from, ns, timeout)
	}
}

// waitServiceAccount waits until ns has its default service account, which
// pod admission needs.
func waitServiceAccount(ctx context.Context, client kubernetes.Interface, ns string) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// phase is one timed run of the delegation figure.
type phase struct {
	name string
	// record puts the run in the CPU and pod-write tables.
	record bool
	// profile, with -profiles, names the remote kube-apiserver's CPU
	// profile of the run's first 10 s.
	profile string
}

// measured runs run; a recorded phase's CPU and pod writes are kept for
// the tables.
func (bn *bench) measured(ctx context.Context, a *atollRun, p phase, pods int, run func()) {
	if !p.record {
		run()
		return
	}
	bn.measureCPU(a, p.name, func() { bn.measureRequests(ctx, p.name, pods, run) })
}

// delegation times N pods to Running created directly in the first remote
// (the baseline), then N pods bound to the virtual node in the master:
// first with master and remote on CPUs of their own (pinSides), which is
// the figure, then sharing every CPU, as they do here otherwise. Each side
// gets one warm-up pod first, so namespaces and service accounts exist
// before the clock starts. It returns the master namespace, which keeps the
// last run's delegated pods (podName(0) .. podName(N-1)), and their number.
func (bn *bench) delegation(ctx context.Context, a *atollRun) (string, int) {
	n := *flagPods
	ns := fleettest.Namespace(bn.b, bn.master, "bench")
	if err := waitServiceAccount(ctx, bn.master, ns); err != nil {
		bn.b.Fatal(err)
	}
	// The warm-up pod is the last of the footprint run's pods.
	if _, err := timeRunning(ctx, bn.master, ns, *flagFootprintPods-1, *flagFootprintPods, "bench", 2*time.Minute); err != nil {
		bn.b.Fatalf("warm-up pod through Atoll: %v", err)
	}

	unpin, err := bn.pinSides(a.p.Pid())
	if err != nil {
		bn.b.Fatal(err)
	}
	// The baseline runs before and after each delegated run, every run on
	// a remote holding none of the others' pods: a remote gets slower with
	// the 2,000-pod runs it has been through (BenchmarkBaselineDrift: the
	// first run is 15-25 % faster than the next ones), and the mean of
	// before and after cancels that drift instead of crediting it to the
	// baseline. The figure is the
	// median round's: one run of each varies by ±5 % on this machine.
	// Only the first round is in the CPU and pod-write tables.
	if *flagRounds < 1 {
		bn.b.Fatal("-rounds: at least 1")
	}
	rounds := make([]delegationRound, *flagRounds)
	before := bn.direct(ctx, a, phase{name: "direct", record: true, profile: "cpu-remote-apiserver-direct.pprof"})
	for i := range rounds {
		dp := phase{name: fmt.Sprintf("round %d: delegated", i+1)}
		ap := phase{name: fmt.Sprintf("round %d: direct, after", i+1)}
		if i == 0 {
			dp = phase{name: "delegated", record: true, profile: "cpu-remote-apiserver-delegated.pprof"}
			ap = phase{name: "direct, after", record: true}
		}
		r := delegationRound{before: before, delegated: bn.delegated(ctx, a, dp, ns, 0, n)}
		bn.deleteDelegated(ctx, ns, 0, n)
		r.after = bn.direct(ctx, a, ap)
		rounds[i], before = r, r.after
		bn.res.Add(fmt.Sprintf("delegation_ratio_%d", i+1), fmt.Sprintf("round %d: delegated %.1f s / direct %.1f s before, %.1f s after", i+1, r.delegated.Seconds(), r.before.Seconds(), r.after.Seconds()), r.ratio(), "")
	}
	unpin()
	m := medianRound(rounds)
	bn.res.Add("direct_s", fmt.Sprintf("%d pods created in the remote -> all Running there (baseline, mean of before and after; median round; remote on CPUs of its own)", n), m.direct().Seconds(), "s")
	bn.res.Add("delegation_s", fmt.Sprintf("%d pods bound to the virtual node -> all Running in the master (median round; master and Atoll on CPU 0)", n), m.delegated.Seconds(), "s")
	bn.res.AddTarget("delegation_ratio", fmt.Sprintf("delegated / direct, master and remote on separate CPUs, median of %d rounds", len(rounds)), m.ratio(), "", AtMost, 1.15)

	direct := bn.direct(ctx, a, phase{name: "direct, shared", record: true})
	delegated := bn.delegated(ctx, a, phase{name: "delegated, shared", record: true}, ns, 0, n)
	bn.res.Add("direct_shared_s", fmt.Sprintf("%d pods direct, every process on every CPU", n), direct.Seconds(), "s")
	bn.res.Add("delegation_shared_s", fmt.Sprintf("%d pods delegated, every process on every CPU", n), delegated.Seconds(), "s")
	bn.res.Add("delegation_shared_ratio", "delegated / direct, sharing the CPUs (the master's own work competes with the remote)", delegated.Seconds()/direct.Seconds(), "")
	return ns, n
}

// direct times -pods pods created in the first remote, in a namespace of
// their own, to Running there; they are deleted before it returns. With
// -profiles and a profile name, the remote's kube-apiserver is profiled
// during the first 10 s of the run.
func (bn *bench) direct(ctx context.Context, a *atollRun, p phase) time.Duration {
	n, remote := *flagPods, bn.remotes[0]
	const ns = "bench-direct"
	if _, err := remote.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		bn.b.Fatal(err)
	}
	if err := waitServiceAccount(ctx, remote, ns); err != nil {
		bn.b.Fatal(err)
	}
	if _, err := timeRunning(ctx, remote, ns, n, n+1, "", time.Minute); err != nil {
		bn.b.Fatalf("warm-up pod in the remote: %v", err)
	}
	var took time.Duration
	var err error
	stopProfile := bn.apiserverProfile(ctx, p.profile, 10*time.Second)
	bn.measured(ctx, a, p, n, func() { took, err = timeRunning(ctx, remote, ns, 0, n, "", 15*time.Minute) })
	stopProfile()
	if err != nil {
		bn.b.Fatalf("%s: %v", p.name, err)
	}
	// The baseline's pods go before Atoll's come.
	if err := remote.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		bn.b.Fatal(err)
	}
	zero := int64(0)
	if err := remote.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		bn.b.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := remote.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		bn.b.Fatalf("delete the baseline's namespace: %v", err)
	}
	return took
}

// deleteDelegated deletes pods [from, to) from the master namespace ns and
// waits until Atoll has deleted their copies in the first remote.
func (bn *bench) deleteDelegated(ctx context.Context, ns string, from, to int) {
	if err := deletePods(ctx, bn.master, ns, from, to); err != nil {
		bn.b.Fatal(err)
	}
	left := 0
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := bn.remotes[0].CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: benchLabel})
		if err != nil {
			return false, nil
		}
		left = 0
		for i := range list.Items {
			var idx int
			if _, err := fmt.Sscanf(list.Items[i].Name, "pod-%d", &idx); err == nil && idx >= from && idx < to {
				left++
			}
		}
		return left == 0, nil
	})
	if err != nil {
		bn.b.Fatalf("delete the delegated pods: %d copies left in the remote: %v", left, err)
	}
}

// delegated times pods [from, to) bound to the virtual node in the master
// namespace ns to Running there. With -profiles and a profile name, Atoll
// (cpu-delegation.pprof) and the remote's kube-apiserver are profiled
// during the first 10 s of the run.
func (bn *bench) delegated(ctx context.Context, a *atollRun, p phase, ns string, from, to int) time.Duration {
	var took time.Duration
	var err error
	if p.profile != "" && bn.profiles != "" {
		defer bn.cpuProfile(ctx, a, "cpu-delegation.pprof", 10*time.Second)()
		defer bn.apiserverProfile(ctx, p.profile, 10*time.Second)()
		// How long the master trails the remote at the end: the status
		// path's share of the run (a watch more on the remote, so only
		// with -profiles).
		remoteAll, _, stop, err := allRunning(ctx, bn.remotes[0], ns, from, to)
		if err != nil {
			bn.b.Fatal(err)
		}
		defer stop()
		defer func() {
			end := time.Now() // the master's last Running was just seen
			select {
			case at := <-remoteAll:
				bn.res.Add("delegation_tail_s", "remote: all Running -> master: all Running (with -profiles)", end.Sub(at).Seconds(), "s")
			case <-time.After(time.Minute):
				bn.b.Logf("%s: the remote watch did not see every pod Running", p.name)
			}
		}()
	}
	bn.measured(ctx, a, p, to-from, func() { took, err = timeRunning(ctx, bn.master, ns, from, to, "bench", 15*time.Minute) })
	if err != nil {
		bn.b.Fatalf("%s: %v", p.name, err)
	}
	return took
}
