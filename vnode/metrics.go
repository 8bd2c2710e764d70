package vnode

import (
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the Prometheus metrics of all virtual nodes of a Manager.
type nodeMetrics struct {
	delegatedPods *prometheus.GaugeVec
	statusSync    *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	remoteUp      *prometheus.GaugeVec
	// cleanupPending is not forgotten with its node: it outlives it.
	cleanupPending *prometheus.GaugeVec
}

// newMetrics creates the metrics and registers them with reg (nil: a private
// registry, i.e. not exported).
func newMetrics(reg prometheus.Registerer) (*nodeMetrics, error) {
	m := &nodeMetrics{
		delegatedPods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "atoll", Subsystem: "vnode", Name: "delegated_pods",
			Help: "Pods delegated to the remote cluster, per virtual node.",
		}, []string{"node"}),
		statusSync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "atoll", Subsystem: "vnode", Name: "status_sync_seconds",
			Help:    "Time from a remote pod change being observed to the master pod status being written.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"node"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "atoll", Subsystem: "vnode", Name: "errors_total",
			Help: "Errors by virtual node and kind (create, update, delete, status, dependency, namespace, gc, node, lease, capacity, events).",
		}, []string{"node", "kind"}),
		remoteUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "atoll", Subsystem: "vnode", Name: "remote_up",
			Help: "1 while the remote API server answers, else 0.",
		}, []string{"node"}),
		cleanupPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "atoll", Subsystem: "vnode", Name: "remote_cleanup_pending",
			Help: "1 while what a removed virtual node made in its remote is still to be deleted (the remote did not answer yet, or refused).",
		}, []string{"node"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.delegatedPods, m.statusSync, m.errors, m.remoteUp, m.cleanupPending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forget drops a removed node's series.
func (m *nodeMetrics) forget(node string) {
	m.delegatedPods.DeleteLabelValues(node)
	m.statusSync.DeleteLabelValues(node)
	m.remoteUp.DeleteLabelValues(node)
	m.errors.DeletePartialMatch(prometheus.Labels{"node": node})
}
