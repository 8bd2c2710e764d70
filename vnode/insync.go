package vnode

import "sync"

// podState names the inputs of one pod sync: the resource versions of the
// master pod and its remote copy, and the generation of the node's spec
// (labels and taints shape the translated pod).
type podState struct {
	masterRV, remoteRV string
	specGen            uint64
}

// inSync remembers, per master pod, the last state whose sync completed
// with both sides converged. The sync is level-based and depends on
// nothing else, so the same state again — an informer resync, the echo of
// a write already handled — needs no work: a full resync of 10,000 pods
// then costs map look-ups instead of 10,000 translations and comparisons.
type inSync struct {
	mu sync.Mutex
	m  map[workKey]podState
}

func newInSync() *inSync { return &inSync{m: map[workKey]podState{}} }

// has reports whether k was last converged in exactly state s.
func (c *inSync) has(k workKey, s podState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.m[k]
	return ok && cur == s
}

// set records that k converged in state s.
func (c *inSync) set(k workKey, s podState) {
	c.mu.Lock()
	c.m[k] = s
	c.mu.Unlock()
}

// forget drops k (its pod is gone, terminating, or being recreated).
func (c *inSync) forget(k workKey) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}
