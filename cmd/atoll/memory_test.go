package main

import "testing"

func TestWorthReturning(t *testing.T) {
	const mb = 1 << 20
	for _, tt := range []struct {
		free, live uint64
		want       bool
	}{
		{free: 81 * mb, live: 83 * mb, want: true},   // after a burst of 10,000 pods
		{free: 8 * mb, live: 34 * mb, want: false},   // idle nodes: not worth a collection
		{free: 40 * mb, live: 100 * mb, want: false}, // less than the GC's own headroom
		{free: 60 * mb, live: 100 * mb, want: true},
		{free: 31 * mb, live: 10 * mb, want: false},
		{free: 32 * mb, live: 10 * mb, want: true},
	} {
		if got := worthReturning(tt.free, tt.live); got != tt.want {
			t.Errorf("worthReturning(%d MB free, %d MB live) = %v, want %v", tt.free/mb, tt.live/mb, got, tt.want)
		}
	}
}
