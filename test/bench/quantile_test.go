package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentileMS(t *testing.T) {
	var samples []time.Duration
	for i := 100; i >= 1; i-- { // 100 ms .. 1 ms, unsorted
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want float64
	}{{50, 50}, {95, 95}, {99, 99}, {100, 100}, {0.1, 1}}
	for _, tt := range tests {
		if got := PercentileMS(samples, tt.p); got != tt.want {
			t.Errorf("PercentileMS(p%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := PercentileMS(nil, 50); !math.IsNaN(got) {
		t.Errorf("PercentileMS(no samples) = %v, want NaN", got)
	}
	if samples[0] != 100*time.Millisecond {
		t.Error("PercentileMS sorted its input in place")
	}
}

// exposition has two series of one histogram, as a Manager with two nodes
// exports it.
const exposition = `# HELP atoll_vnode_status_sync_seconds Time from a remote pod change being observed to the master pod status being written.
# TYPE atoll_vnode_status_sync_seconds histogram
atoll_vnode_status_sync_seconds_bucket{node="a",le="0.01"} 10
atoll_vnode_status_sync_seconds_bucket{node="a",le="0.1"} 60
atoll_vnode_status_sync_seconds_bucket{node="a",le="1"} 90
atoll_vnode_status_sync_seconds_bucket{node="a",le="+Inf"} 100
atoll_vnode_status_sync_seconds_sum{node="a"} 20
atoll_vnode_status_sync_seconds_count{node="a"} 100
atoll_vnode_status_sync_seconds_bucket{node="b",le="0.01"} 0
atoll_vnode_status_sync_seconds_bucket{node="b",le="0.1"} 40
atoll_vnode_status_sync_seconds_bucket{node="b",le="1"} 100
atoll_vnode_status_sync_seconds_bucket{node="b",le="+Inf"} 100
atoll_vnode_status_sync_seconds_sum{node="b"} 30
atoll_vnode_status_sync_seconds_count{node="b"} 100
# TYPE atoll_vnode_delegated_pods gauge
atoll_vnode_delegated_pods{node="a"} 3
`

func TestParseHistogramAndQuantile(t *testing.T) {
	h, err := ParseHistogram(strings.NewReader(exposition), "atoll_vnode_status_sync_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if h.Count() != 200 {
		t.Fatalf("Count() = %v, want 200 (two series summed)", h.Count())
	}
	// Cumulative: 10 <= 0.01, 100 <= 0.1, 190 <= 1, 200 in all.
	tests := []struct {
		q, want float64
	}{
		{0.05, 0.01},   // rank 10: the first bucket's top
		{0.5, 0.1},     // rank 100: the second bucket's top
		{0.95, 1},      // rank 190: the third bucket's top
		{0.275, 0.055}, // rank 55: 45 of the 90 in (0.01, 0.1]
		{0.99, 1},      // rank 198 falls in +Inf: the highest finite bound
	}
	for _, tt := range tests {
		if got := h.Quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}

	earlier := Histogram{Bounds: h.Bounds, Counts: []float64{10, 100, 100, 100}}
	d, err := h.Sub(earlier)
	if err != nil {
		t.Fatal(err)
	}
	// 90 of the 100 in (0.1, 1], 10 above: rank 50 is 50/90 into the bucket.
	if med := d.Quantile(0.5); d.Count() != 100 || math.Abs(med-0.6) > 1e-9 {
		t.Errorf("after Sub: count %v, median %v; want 100 observations, median 0.6", d.Count(), med)
	}

	if _, err := ParseHistogram(strings.NewReader(exposition), "atoll_vnode_delegated_pods"); err == nil {
		t.Error("ParseHistogram of a gauge: no error")
	}
	empty, err := ParseHistogram(strings.NewReader(exposition), "atoll_missing_seconds")
	if err != nil || empty.Count() != 0 || !math.IsNaN(empty.Quantile(0.5)) {
		t.Errorf("missing histogram = %+v, %v; want empty, NaN quantile", empty, err)
	}
}
