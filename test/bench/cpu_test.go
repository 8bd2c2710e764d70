package bench

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/atoll-dev/atoll/test/testenv"
)

// cpuUse is the CPU time each process of the bed (and Atoll) used during
// one phase: where the time of a phase went.
type cpuUse struct {
	phase string
	wall  time.Duration
	byPID map[string]time.Duration
}

// cpuSnapshot reads the CPU time so far of every bed process and of Atoll.
func (bn *bench) cpuSnapshot(a *atollRun) map[string]time.Duration {
	out := map[string]time.Duration{}
	procs, err := testenv.Status(bn.env.Dir)
	if err != nil {
		bn.b.Logf("cpu: %v", err)
		return out
	}
	pids := map[string]int{"atoll": a.p.Pid()}
	for _, p := range procs {
		pids[p.Name] = p.Pid
	}
	for name, pid := range pids {
		if st, err := ReadProcStat(pid); err == nil {
			out[name] = st.CPU
		}
	}
	return out
}

// measureCPU runs phase and records the CPU every process used meanwhile.
func (bn *bench) measureCPU(a *atollRun, phase string, run func()) {
	before, start := bn.cpuSnapshot(a), time.Now()
	run()
	after := bn.cpuSnapshot(a)
	u := cpuUse{phase: phase, wall: time.Since(start), byPID: map[string]time.Duration{}}
	for name, t := range after {
		u.byPID[name] = t - before[name]
	}
	bn.cpu = append(bn.cpu, u)
}

// writeCPU prints one column per phase, one row per process.
func writeCPU(w io.Writer, uses []cpuUse) error {
	if len(uses) == 0 {
		return nil
	}
	names := map[string]bool{}
	for _, u := range uses {
		for n := range u.byPID {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "CPU SECONDS\t")
	for _, u := range uses {
		fmt.Fprintf(tw, "%s (%.1fs)\t", u.phase, u.wall.Seconds())
	}
	fmt.Fprintln(tw)
	total := make([]time.Duration, len(uses))
	for _, n := range sorted {
		fmt.Fprintf(tw, "%s\t", n)
		for i, u := range uses {
			fmt.Fprintf(tw, "%.1f\t", u.byPID[n].Seconds())
			total[i] += u.byPID[n]
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "all\t")
	for _, t := range total {
		fmt.Fprintf(tw, "%.1f\t", t.Seconds())
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}
