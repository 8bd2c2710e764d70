package bench

import (
	"testing"
	"time"
)

func TestDelegationRound(t *testing.T) {
	r := delegationRound{before: 16 * time.Second, delegated: 18 * time.Second, after: 20 * time.Second}
	if got := r.direct(); got != 18*time.Second {
		t.Fatalf("direct = %s, want the mean of before and after, 18s", got)
	}
	if got := r.ratio(); got != 1 {
		t.Fatalf("ratio = %v, want 1", got)
	}
}

func TestMedianRound(t *testing.T) {
	round := func(delegated int) delegationRound {
		return delegationRound{before: 10 * time.Second, delegated: time.Duration(delegated) * time.Second, after: 10 * time.Second}
	}
	tests := []struct {
		name   string
		rounds []delegationRound
		want   time.Duration
	}{
		{name: "one", rounds: []delegationRound{round(12)}, want: 12 * time.Second},
		{name: "odd", rounds: []delegationRound{round(13), round(11), round(12)}, want: 12 * time.Second},
		{name: "even: the lower middle", rounds: []delegationRound{round(14), round(11), round(13), round(12)}, want: 12 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]delegationRound(nil), tt.rounds...)
			if got := medianRound(tt.rounds).delegated; got != tt.want {
				t.Fatalf("median round delegated = %s, want %s", got, tt.want)
			}
			for i := range in {
				if in[i] != tt.rounds[i] {
					t.Fatal("medianRound reordered its input")
				}
			}
		})
	}
}
