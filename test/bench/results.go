package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Bound says which side of a target a figure must stay on.
type Bound int

const (
	// AtMost: the figure passes when it is not above the target.
	AtMost Bound = iota
	// Exactly: the figure passes when it equals the target.
	Exactly
)

// Figure is one measured number.
type Figure struct {
	// Key is the figure's name in the JSON (for example "delegation_ratio").
	Key string
	// Label says in words what was measured, for the table.
	Label string
	// Value is the measurement, in Unit.
	Value float64
	Unit  string
	// Target, when HasTarget, is what Value is judged against.
	Target    float64
	HasTarget bool
	Bound     Bound
}

// Pass reports whether the figure meets its target (true without one).
func (f Figure) Pass() bool {
	if !f.HasTarget {
		return true
	}
	if math.IsNaN(f.Value) {
		return false
	}
	if f.Bound == Exactly {
		return f.Value == f.Target
	}
	return f.Value <= f.Target
}

// Results collects the figures of one run, in the order they were measured.
type Results struct {
	figures []Figure
}

// Add records a figure without a target.
func (r *Results) Add(key, label string, value float64, unit string) {
	r.figures = append(r.figures, Figure{Key: key, Label: label, Value: value, Unit: unit})
}

// AddTarget records a figure with a target.
func (r *Results) AddTarget(key, label string, value float64, unit string, bound Bound, target float64) {
	r.figures = append(r.figures, Figure{Key: key, Label: label, Value: value, Unit: unit, Target: target, HasTarget: true, Bound: bound})
}

// Figures returns the figures recorded so far.
func (r *Results) Figures() []Figure { return append([]Figure(nil), r.figures...) }

// Missed returns the keys of the figures that miss their target.
func (r *Results) Missed() []string {
	var out []string
	for _, f := range r.figures {
		if !f.Pass() {
			out = append(out, f.Key)
		}
	}
	return out
}

// WriteTable prints one line per figure: what, value, target, PASS/FAIL.
func (r *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET\tRESULT\tKEY")
	for _, f := range r.figures {
		target, result := "-", "-"
		if f.HasTarget {
			op := "≤"
			if f.Bound == Exactly {
				op = "="
			}
			target = op + " " + formatValue(f.Target, f.Unit)
			result = "PASS"
			if !f.Pass() {
				result = "FAIL"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Label, formatValue(f.Value, f.Unit), target, result, f.Key)
	}
	return tw.Flush()
}

func formatValue(v float64, unit string) string {
	var s string
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.3g", v)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// JSON returns the figures as one object of numbers, keys sorted. A figure
// that could not be measured (NaN) is left out rather than written as a
// number it is not.
func (r *Results) JSON() ([]byte, error) {
	m := map[string]float64{}
	for _, f := range r.figures {
		if !math.IsNaN(f.Value) && !math.IsInf(f.Value, 0) {
			m[f.Key] = f.Value
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{\n")
	for i, k := range keys {
		v, err := json.Marshal(m[k])
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		fmt.Fprintf(&b, "  %q: %s", k, v)
		if i < len(keys)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return []byte(b.String()), nil
}

// WriteJSON writes JSON() to path, creating its directory.
func (r *Results) WriteJSON(path string) error {
	data, err := r.JSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
