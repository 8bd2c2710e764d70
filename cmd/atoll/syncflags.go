package main

import (
	"github.com/spf13/pflag"

	"github.com/atoll-dev/atoll/vnode"
)

// syncOptions are the flags of every command running virtual nodes that
// size their sync: workers per node and the clients' rate limits.
type syncOptions struct {
	workers int
	qps     float32
	burst   int
}

func (o *syncOptions) addFlags(f *pflag.FlagSet) {
	f.IntVar(&o.workers, "workers", vnode.DefaultWorkers, "pod syncs each virtual node runs at once")
	f.Float32Var(&o.qps, "qps", vnode.DefaultQPS, "QPS of the virtual nodes' clients, to the master and to each remote")
	f.IntVar(&o.burst, "burst", vnode.DefaultBurst, "burst of the virtual nodes' clients, to the master and to each remote")
}

// apply sets the options in a manager config.
func (o syncOptions) apply(c *vnode.ManagerConfig) {
	c.Workers, c.QPS, c.Burst = o.workers, o.qps, o.burst
}
