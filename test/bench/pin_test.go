package bench

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/atoll-dev/atoll/test/testenv"
)

// pinSides gives the master side (its etcd, kube-apiserver, scheduler,
// controller-manager, and Atoll) CPU 0 and the remote side (the remotes'
// processes) the other CPUs, as if master and remote were machines of their
// own: what the master does then costs the remote nothing, which is what a
// delegation-vs-direct ratio against the physical limit needs (the bench's
// bed gives every cluster its own etcd). masterSide are more processes of
// the master side (Atoll's). The bench itself, the clients of both runs,
// stays on every CPU. The returned func gives every process all CPUs back.
func (bn *bench) pinSides(masterSide ...int) (func(), error) {
	if runtime.NumCPU() < 2 {
		return nil, errors.New("pin: needs 2 CPUs")
	}
	procs, err := testenv.Status(bn.env.Dir)
	if err != nil {
		return nil, err
	}
	all := make([]int, runtime.NumCPU())
	for i := range all {
		all[i] = i
	}
	side := map[int][]int{}
	for _, pid := range masterSide {
		side[pid] = []int{0}
	}
	for _, p := range procs {
		if strings.HasPrefix(p.Name, "master/") {
			side[p.Pid] = []int{0}
		} else {
			side[p.Pid] = all[1:]
		}
	}
	undo := func() {
		for pid := range side {
			_ = pin(pid, all)
		}
	}
	for pid, cpus := range side {
		if err := pin(pid, cpus); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// pin sets the CPU affinity of every thread of pid; threads it starts
// later inherit it.
func pin(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return fmt.Errorf("pin %d: %w", pid, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}
