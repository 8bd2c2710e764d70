package reconcile

import (
	"errors"
	"fmt"
	"testing"
)

func nodes(n int, prefix string) []NodeSpec {
	out := make([]NodeSpec, n)
	for i := range out {
		out[i] = node(fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

// withEach returns ns with f applied to the first n.
func withEach(ns []NodeSpec, n int, f func(*NodeSpec)) []NodeSpec {
	for i := range n {
		f(&ns[i])
	}
	return ns
}

func noExecute(s *NodeSpec) {
	s.Taints = append(s.Taints, Taint{Key: "maintenance", Value: "true", Effect: TaintEffectNoExecute})
}

func cordon(s *NodeSpec) { s.Cordon = true }

func TestCheckBreaker(t *testing.T) {
	tests := []struct {
		name       string
		desired    []NodeSpec
		live       []NodeSpec
		message    string
		maxShare   float64
		wantReason BreakerReason // "" : allowed
		wantErr    string
	}{
		{name: "adding and updating is fine", desired: nodes(4, "n"), live: nodes(2, "n")},
		{name: "removing half is fine", desired: nodes(2, "n"), live: nodes(4, "n")},
		{name: "removing more than half is refused", desired: nodes(1, "n"), live: nodes(4, "n"), wantReason: BreakerMassRemoval,
			wantErr: `breaker: revision would remove 3 of 4 live nodes (75%, more than the 50% allowed); to apply it anyway, add the trailer "Atoll-Allow-Removal: 3" to the commit message`},
		{name: "a custom share", desired: nodes(3, "n"), live: nodes(4, "n"), maxShare: 0.2, wantReason: BreakerMassRemoval},
		{name: "renaming every node is a mass removal", desired: nodes(4, "m"), live: nodes(4, "n"), wantReason: BreakerMassRemoval},
		{name: "an empty revision is refused", desired: nil, live: nodes(3, "n"), wantReason: BreakerEmpty,
			wantErr: `breaker: revision declares no clusters and would remove all 3 live nodes; to apply it anyway, add the trailer "Atoll-Allow-Removal: 3" to the commit message`},
		{name: "an empty revision is refused with nothing live too", desired: nil, live: nil, wantReason: BreakerEmpty,
			wantErr: `breaker: revision declares no clusters (an empty render usually means a broken revision); to apply it anyway, add the trailer "Atoll-Allow-Removal: 0" to the commit message`},
		{name: "an empty revision with nothing live and the trailer", desired: nil, live: nil, message: "Start empty\n\nAtoll-Allow-Removal: 0"},
		{name: "the trailer allows it", desired: nil, live: nodes(3, "n"),
			message: "Remove every cluster\n\nWe are moving.\n\nSigned-off-by: A <a@example.com>\nAtoll-Allow-Removal: 3\n"},
		{name: "the trailer key is case-insensitive and may allow more", desired: nodes(1, "n"), live: nodes(4, "n"),
			message: "Shrink\n\natoll-allow-removal: 10"},
		{name: "a trailer allowing too few", desired: nodes(1, "n"), live: nodes(4, "n"), message: "Shrink\n\nAtoll-Allow-Removal: 2", wantReason: BreakerMassRemoval,
			wantErr: `breaker: revision would remove 3 of 4 live nodes (75%, more than the 50% allowed); the commit's trailer "Atoll-Allow-Removal: 2" allows only 2; to apply it anyway, add the trailer "Atoll-Allow-Removal: 3" to the commit message`},
		{name: "not a trailer outside the last paragraph", desired: nil, live: nodes(1, "n"), message: "Remove\n\nAtoll-Allow-Removal: 5\n\nMore text.", wantReason: BreakerEmpty},
		{name: "tainting half NoExecute is fine", desired: withEach(nodes(4, "n"), 2, noExecute), live: nodes(4, "n")},
		{name: "tainting more than half NoExecute is refused", desired: withEach(nodes(4, "n"), 3, noExecute), live: nodes(4, "n"), wantReason: BreakerMassEviction,
			wantErr: `breaker: revision would cordon or taint NoExecute 3 of 4 live nodes (75%, more than the 50% allowed); to apply it anyway, add the trailer "Atoll-Allow-Removal: 3" to the commit message`},
		{name: "cordoning more than half is refused", desired: withEach(nodes(4, "n"), 3, cordon), live: nodes(4, "n"), wantReason: BreakerMassEviction},
		{name: "cordons and NoExecute taints count together", desired: withEach(withEach(nodes(4, "n"), 2, cordon), 3, noExecute), live: nodes(4, "n"), wantReason: BreakerMassEviction},
		{name: "a NoExecute taint already there does not count", desired: withEach(nodes(4, "n"), 4, noExecute), live: withEach(nodes(4, "n"), 4, noExecute)},
		{name: "a NoSchedule taint does not count", desired: withEach(nodes(4, "n"), 4, func(s *NodeSpec) { s.Taints = []Taint{{Key: "k", Effect: TaintEffectNoSchedule}} }), live: nodes(4, "n")},
		{name: "the trailer must cover removals and evictions", desired: withEach(nodes(3, "n"), 3, cordon), live: nodes(4, "n"), message: "Drain\n\nAtoll-Allow-Removal: 3", wantReason: BreakerMassEviction,
			wantErr: `breaker: revision would cordon or taint NoExecute 3 of 4 live nodes (75%, more than the 50% allowed) and remove 1; the commit's trailer "Atoll-Allow-Removal: 3" allows only 3; to apply it anyway, add the trailer "Atoll-Allow-Removal: 4" to the commit message`},
		{name: "the trailer allows mass eviction", desired: withEach(nodes(3, "n"), 3, cordon), live: nodes(4, "n"), message: "Drain\n\nAtoll-Allow-Removal: 4"},
		{name: "not a trailer in the subject", desired: nil, live: nodes(1, "n"), message: "Atoll-Allow-Removal: 5", wantReason: BreakerEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBreaker(ComputePlan(tt.desired, tt.live), tt.message, tt.maxShare)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var be *BreakerError
			if !errors.As(err, &be) || !errors.Is(err, ErrBreakerOpen) {
				t.Fatalf("error %v is not a *BreakerError matching ErrBreakerOpen", err)
			}
			if be.Reason != tt.wantReason {
				t.Errorf("reason %s, want %s", be.Reason, tt.wantReason)
			}
			if tt.wantErr != "" && err.Error() != tt.wantErr {
				t.Errorf("error\n%q, want\n%q", err, tt.wantErr)
			}
		})
	}
}

func TestAllowedRemovals(t *testing.T) {
	tests := []struct {
		name    string
		message string
		want    int
		wantOK  bool
	}{
		{"none", "Fix\n\nBody.", 0, false},
		{"present", "Fix\n\nBody.\n\nAtoll-Allow-Removal: 7", 7, true},
		{"CRLF and trailing blank lines", "Fix\r\n\r\nAtoll-Allow-Removal: 2\r\n\r\n", 2, true},
		{"last wins", "Fix\n\nAtoll-Allow-Removal: 1\nAtoll-Allow-Removal: 4", 4, true},
		{"not a number", "Fix\n\nAtoll-Allow-Removal: all", 0, false},
		{"negative", "Fix\n\nAtoll-Allow-Removal: -1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AllowedRemovals(tt.message)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("AllowedRemovals = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
