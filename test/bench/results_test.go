package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFigurePass(t *testing.T) {
	tests := []struct {
		name string
		f    Figure
		want bool
	}{
		{"no target", Figure{Value: 99}, true},
		{"under", Figure{Value: 1.1, Target: 1.15, HasTarget: true}, true},
		{"at", Figure{Value: 1.15, Target: 1.15, HasTarget: true}, true},
		{"over", Figure{Value: 1.2, Target: 1.15, HasTarget: true}, false},
		{"not measured", Figure{Value: math.NaN(), Target: 1, HasTarget: true}, false},
		{"exactly zero", Figure{Value: 0, Target: 0, HasTarget: true, Bound: Exactly}, true},
		{"not zero", Figure{Value: 3, Target: 0, HasTarget: true, Bound: Exactly}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Pass(); got != tt.want {
				t.Errorf("Pass() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResultsTableAndJSON(t *testing.T) {
	var r Results
	r.AddTarget("delegation_ratio", "delegated / direct", 1.08, "", AtMost, 1.15)
	r.AddTarget("sync_p99_ms", "status sync p99", 312, "ms", AtMost, 250)
	r.AddTarget("unchanged_poll_objects", "objects fetched", 0, "", Exactly, 0)
	r.Add("direct_s", "direct", 12.5, "s")
	r.Add("sync_metric_p99_ms", "not measured", math.NaN(), "ms")

	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.08", "≤ 1.15", "312 ms", "FAIL", "= 0", "12.5 s", "n/a"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if got := strings.Count(table.String(), "PASS"); got != 2 {
		t.Errorf("%d PASS in the table, want 2:\n%s", got, table.String())
	}
	if got := r.Missed(); len(got) != 1 || got[0] != "sync_p99_ms" {
		t.Errorf("Missed() = %v, want [sync_p99_ms]", got)
	}

	path := filepath.Join(t.TempDir(), "out", "results.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("results are not a JSON object of numbers: %v\n%s", err, data)
	}
	want := map[string]float64{"delegation_ratio": 1.08, "sync_p99_ms": 312, "unchanged_poll_objects": 0, "direct_s": 12.5}
	if len(got) != len(want) {
		t.Errorf("JSON = %v, want %v (NaN left out)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON %s = %v, want %v", k, got[k], v)
		}
	}
}
