package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// tickCondition is the pod condition the bench changes on remote pods; its
// message is a sequence number. Atoll mirrors remote conditions to the
// master pod, so each change is one status transition to carry over.
const tickCondition corev1.PodConditionType = "bench.atoll.dev/Tick"

// statusSyncHistogram is Atoll's histogram of the same latency.
const statusSyncHistogram = "atoll_vnode_status_sync_seconds"

// tickOf returns the sequence number a pod's tick condition carries.
func tickOf(p *corev1.Pod) (int, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == tickCondition {
			n, err := strconv.Atoi(c.Message)
			return n, err == nil
		}
	}
	return 0, false
}

// tickTimes records when each tick was first seen.
type tickTimes struct {
	mu   sync.Mutex
	seen map[int]time.Time
}

func (t *tickTimes) see(p *corev1.Pod, at time.Time) {
	n, ok := tickOf(p)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.seen[n]; !dup {
		t.seen[n] = at
	}
}

func (t *tickTimes) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

func (t *tickTimes) get(n int) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.seen[n]
	return at, ok
}

// statusSync changes the status of the delegated pods' remote copies at
// -sync-rate per second (each pod once) and measures each change from the remote watch seeing it to
// the master watch seeing it mirrored, client-side, and by Atoll's own
// histogram over the same window.
func (bn *bench) statusSync(ctx context.Context, a *atollRun, ns string) {
	// No pod changes twice, so every change must reach the master.
	n, rate := *flagPods, *flagSyncRate
	total := min(rate**flagSyncSeconds, n)
	remote := bn.remotes[0]
	remoteSeen := &tickTimes{seen: map[int]time.Time{}}
	masterSeen := &tickTimes{seen: map[int]time.Time{}}
	rw, err := watchPods(ctx, remote, ns, remoteSeen.see)
	if err != nil {
		bn.b.Fatal(err)
	}
	defer rw.stop()
	mw, err := watchPods(ctx, bn.master, ns, masterSeen.see)
	if err != nil {
		bn.b.Fatal(err)
	}
	defer mw.stop()
	before, err := ScrapeHistogram(ctx, a.metricsURL(), statusSyncHistogram)
	if err != nil {
		bn.b.Fatal(err)
	}

	var wg sync.WaitGroup
	var errMu sync.Mutex
	var patchErr error
	sem := make(chan struct{}, 16)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for seq := range total {
		<-tick.C
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"True","reason":"Tick","message":"%d"}]}}`, tickCondition, seq)
			err := withTimeout(ctx, 10*time.Second, func(ctx context.Context) error {
				_, err := remote.CoreV1().Pods(ns).Patch(ctx, podName(seq%n), types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
				return err
			})
			if err != nil {
				errMu.Lock()
				patchErr = err
				errMu.Unlock()
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	if patchErr != nil {
		bn.b.Fatalf("change remote pod status: %v", patchErr)
	}
	// Every change is the last one of its pod: the master ends up with all.
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return remoteSeen.len() >= total && masterSeen.len() >= total, nil
	})
	var latencies []time.Duration
	lost := 0
	for seq := range total {
		r, ok := remoteSeen.get(seq)
		m, mok := masterSeen.get(seq)
		if !ok || !mok {
			lost++
			continue
		}
		latencies = append(latencies, m.Sub(r))
	}
	after, err := ScrapeHistogram(ctx, a.metricsURL(), statusSyncHistogram)
	if err != nil {
		bn.b.Fatal(err)
	}
	h, err := after.Sub(before)
	if err != nil {
		bn.b.Fatal(err)
	}
	label := fmt.Sprintf("status sync, remote watch -> master watch, %d changes at %d/s", total, rate)
	bn.res.Add("sync_p50_ms", label+", p50", PercentileMS(latencies, 50), "ms")
	bn.res.Add("sync_p95_ms", "status sync, p95", PercentileMS(latencies, 95), "ms")
	bn.res.AddTarget("sync_p99_ms", "status sync, p99", PercentileMS(latencies, 99), "ms", AtMost, 250)
	bn.res.AddTarget("sync_lost", "status changes never seen in the master", float64(lost), "", Exactly, 0)
	bn.res.Add("sync_metric_p50_ms", fmt.Sprintf("status sync by Atoll's histogram (%.0f observations), p50", h.Count()), h.Quantile(0.50)*1000, "ms")
	bn.res.Add("sync_metric_p95_ms", "status sync by Atoll's histogram, p95", h.Quantile(0.95)*1000, "ms")
	bn.res.AddTarget("sync_metric_p99_ms", "status sync by Atoll's histogram, p99", h.Quantile(0.99)*1000, "ms", AtMost, 250)
}
