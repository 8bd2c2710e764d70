package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atoll-dev/atoll/reconcile"
)

func TestWatchPrinter(t *testing.T) {
	tests := []struct {
		name string
		evs  []reconcile.Progress
		want []string
	}{
		{
			name: "plan and result",
			evs: []reconcile.Progress{
				{Kind: reconcile.ProgressPlan, Revision: "sha256:0123456789abcdef", Plan: reconcile.ComputePlan([]reconcile.NodeSpec{{Name: "r1"}}, nil)},
				{Kind: reconcile.ProgressApplied, Node: "r1", Action: reconcile.ActionAdd},
				{Kind: reconcile.ProgressStatus, Revision: "sha256:0123456789abcdef", Status: reconcile.CommitStatus{State: reconcile.StateSuccess, Description: "1 node ready · +1 added"}},
			},
			want: []string{"plan for 0123456789ab:", "  + node r1", "✓ added r1", "✓ 0123456789ab success: 1 node ready · +1 added"},
		},
		{
			name: "invalid names file and line",
			evs:  []reconcile.Progress{{Kind: reconcile.ProgressInvalid, Revision: "abc", Err: errors.New("a.yaml:7: spec.bogus: unknown field")}},
			want: []string{"✗ abc not applied, nothing changes:", "  a.yaml:7: spec.bogus: unknown field"},
		},
		{
			name: "drain progress printed when the count changes",
			evs: []reconcile.Progress{
				{Kind: reconcile.ProgressDrain, Node: "r2", Remaining: 3, Elapsed: time.Second},
				{Kind: reconcile.ProgressDrain, Node: "r2", Remaining: 3, Elapsed: 2 * time.Second},
				{Kind: reconcile.ProgressDrain, Node: "r2", Remaining: 0, Elapsed: 3 * time.Second},
				{Kind: reconcile.ProgressApplied, Node: "r2", Action: reconcile.ActionRemove, Err: errors.New("boom")},
			},
			want: []string{"draining r2: 3 pods left (1s)", "draining r2: 0 pods left (3s)", "✗ remove r2: boom (retrying)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := &watchPrinter{w: &b}
			for _, ev := range tt.evs {
				p.observe(ev)
			}
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Count(out, "pods left (2s)") != 0 {
				t.Errorf("an unchanged drain count was printed again:\n%s", out)
			}
		})
	}
}
