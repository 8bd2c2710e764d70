// Command atoll runs many Kubernetes clusters as one: each remote cluster
// appears in a master cluster as a virtual node, declared in a git repository.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/atoll-dev/atoll/reconcile"
)

// gcPercent is the GOGC Atoll runs with when GOGC is not set. Its heap is
// mostly informer caches that live as long as the process (both copies of
// every delegated pod), and with Go's default of 100 the heap grows to twice
// that before a collection: at 10,000 pods that is over 100 MB of resident
// memory for a few percent of a core saved. Lower still (25) cost half as
// much CPU again per pod delegated for 30 MB (test/bench/RESULTS.md).
const gcPercent = 50

func main() {
	reconcile.ServeRender() // in a kustomize build's own process: runs it and exits
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	go returnFreedMemory(memoryCheckInterval)
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "atoll:", err)
		os.Exit(exitCode(err))
	}
}
