package bench

import (
	"context"
	"fmt"
	"time"
)

// footprintPods brings the virtual node to -footprint-pods delegated pods
// (the delegation runs left have of them, and the warm-up pod) and
// measures the process with them: the time and CPU to delegate the rest,
// then RSS and CPU over the sampling window.
func (bn *bench) footprintPods(ctx context.Context, a *atollRun, ns string, have int) {
	total := *flagFootprintPods
	before, err := ReadProcStat(a.p.Pid())
	if err != nil {
		bn.b.Fatal(err)
	}
	var took time.Duration
	bn.measured(ctx, a, phase{name: "to 10k", record: true}, total-1-have, func() {
		took, err = timeRunning(ctx, bn.master, ns, have, total-1, "bench", 30*time.Minute)
	})
	if err != nil {
		bn.b.Fatalf("footprint: %v", err)
	}
	after, err := ReadProcStat(a.p.Pid())
	if err != nil {
		bn.b.Fatal(err)
	}
	added := total - 1 - have
	bn.res.Add("pods_10k_s", fmt.Sprintf("%d more pods bound -> all Running in the master (%d in all)", added, total), took.Seconds(), "s")
	bn.res.Add("cpu_per_1k_pods_s", "Atoll CPU per 1,000 pods delegated", (after.CPU-before.CPU).Seconds()/float64(added)*1000, "s")
	s, err := Sample(ctx, a.p.Pid(), *flagWindow)
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.heapProfile(ctx, a, "heap-10k-pods.pprof")
	bn.res.AddTarget("rss_10k_pods_mb", fmt.Sprintf("RSS, %d delegated pods on one virtual node (max over %s)", total, *flagWindow), MB(s.MaxRSS), "MB", AtMost, 200)
	bn.res.Add("cpu_10k_pods_cores", fmt.Sprintf("CPU, %d delegated pods, steady", total), s.Cores(), "cores")
	bn.memoryFigures(ctx, a, "mem_10k_pods", fmt.Sprintf("%d pods", total))
	bn.res.Add("peak_rss_mb", "RSS high-water mark of the process", MB(max(s.MaxRSS, peak(a))), "MB")
}

// peak is the process's RSS high-water mark so far (0 if unreadable).
func peak(a *atollRun) int64 {
	st, err := ReadProcStat(a.p.Pid())
	if err != nil {
		return 0
	}
	return st.PeakRSS
}

// memoryFigures records where the process's memory is, from the Go
// runtime's own metrics: live heap, heap kept but free, stacks, goroutines.
func (bn *bench) memoryFigures(ctx context.Context, a *atollRun, key, what string) {
	v, err := ScrapeValues(ctx, a.metricsURL(), "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
		"go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	if err != nil {
		bn.b.Logf("memory figures: %v", err)
		return
	}
	mb := func(name string) float64 { return v[name] / (1 << 20) }
	bn.res.Add(key+"_heap_mb", what+": heap in use", mb("go_memstats_heap_inuse_bytes"), "MB")
	bn.res.Add(key+"_heap_free_mb", what+": heap free, not yet returned", mb("go_memstats_heap_idle_bytes")-mb("go_memstats_heap_released_bytes"), "MB")
	bn.res.Add(key+"_stack_mb", what+": goroutine stacks", mb("go_memstats_stack_inuse_bytes"), "MB")
	bn.res.Add(key+"_goroutines", what+": goroutines", v["go_goroutines"], "")
	if st, err := ReadProcStat(a.p.Pid()); err == nil {
		bn.res.Add(key+"_rss_file_mb", what+": RSS mapped from the binary (file pages)", MB(st.FileRSS), "MB")
	}
}
