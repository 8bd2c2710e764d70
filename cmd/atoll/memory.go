package main

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Freed heap memory is given back to the operating system once a burst is
// over. The Go runtime returns free heap pages in the background against a
// goal it sets at each collection; after a burst (a rollout of thousands of
// pods) Atoll allocates little, the next collection can be two minutes away,
// and until then tens of MB stay resident though free (test/bench/RESULTS.md).
const (
	memoryCheckInterval = 5 * time.Second
	// memoryReturnSpacing bounds the cost: at most one collection of this
	// kind every 15 s, whatever the load (one is 0.1 s of CPU with 10,000
	// pods cached). A relist after a broken watch frees tens of MB at once,
	// and the memory it took back should not stay resident for a minute.
	memoryReturnSpacing = 15 * time.Second
	// minFreeToReturn is the least free heap worth a collection.
	minFreeToReturn = 32 << 20
)

// returnFreedMemory checks every interval how much of the heap is free and
// not yet returned, and returns it (one collection) when worthReturning
// says so, at most once per memoryReturnSpacing. It runs for the life of
// the process.
func returnFreedMemory(interval time.Duration) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var last time.Time
	for now := range time.Tick(interval) {
		metrics.Read(samples)
		if now.Sub(last) >= memoryReturnSpacing && worthReturning(samples[0].Value.Uint64(), samples[1].Value.Uint64()) {
			debug.FreeOSMemory()
			last = now
		}
	}
}

// worthReturning reports whether free heap bytes not yet returned are worth
// a collection, given the live heap: at least minFreeToReturn, and more than
// the headroom gcPercent lets the heap grow by before its next collection
// (which would reuse that much anyway).
func worthReturning(free, live uint64) bool {
	return free >= minFreeToReturn && free > live*gcPercent/100
}
