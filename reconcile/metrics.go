package reconcile

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the reconciler's Prometheus metrics.
type metrics struct {
	passes      *prometheus.CounterVec // by result
	revisions   *prometheus.CounterVec // outcome per revision, by state
	changes     *prometheus.CounterVec // applied changes, by action
	clusterErrs *prometheus.CounterVec // by cluster
	nodes       *prometheus.GaugeVec   // declared nodes by readiness
	lastSuccess prometheus.Gauge
	drain       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_reconcile_passes_total", Help: "Reconcile passes by result (ok, retry, invalid, refused, fetch_error).",
		}, []string{"result"}),
		revisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_reconcile_revision_outcomes_total", Help: "Revision outcomes reported, by commit state.",
		}, []string{"state"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_reconcile_changes_total", Help: "Node changes applied, by action (add, update, remove).",
		}, []string{"action"}),
		clusterErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_reconcile_cluster_errors_total", Help: "Failed attempts to apply a cluster's node, by cluster.",
		}, []string{"cluster"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atoll_reconcile_nodes", Help: "Declared virtual nodes by readiness (ready, unready).",
		}, []string{"state"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_reconcile_last_success_timestamp_seconds", Help: "When a revision last reached success.",
		}),
		drain: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atoll_reconcile_drain_duration_seconds", Help: "How long draining a removed node took.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.passes, m.revisions, m.changes, m.clusterErrs, m.nodes, m.lastSuccess, m.drain} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, err
		}
	}
	return m, nil
}
