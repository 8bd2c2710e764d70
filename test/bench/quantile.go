package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// PercentileMS returns the p-th percentile (0 < p <= 100) of samples, in
// milliseconds, by the nearest-rank method: the smallest sample with at
// least p% of the samples at or below it. It is NaN for no samples.
func PercentileMS(samples []time.Duration, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return float64(s[min(max(rank, 1), len(s))-1]) / float64(time.Millisecond)
}

// Histogram is the cumulative bucket counts of a Prometheus histogram,
// summed over its series.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending, +Inf last.
	Bounds []float64
	// Counts[i] is the number of observations <= Bounds[i].
	Counts []float64
}

// Count is the number of observations.
func (h Histogram) Count() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Sub returns h minus an earlier scrape of the same histogram: the
// observations made between the two.
func (h Histogram) Sub(earlier Histogram) (Histogram, error) {
	if len(earlier.Bounds) == 0 {
		return h, nil
	}
	if !slices.Equal(h.Bounds, earlier.Bounds) {
		return Histogram{}, fmt.Errorf("subtract histograms: buckets differ")
	}
	out := Histogram{Bounds: h.Bounds, Counts: make([]float64, len(h.Counts))}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i] - earlier.Counts[i]
	}
	return out, nil
}

// Quantile estimates the q-quantile (0 < q < 1) as Prometheus'
// histogram_quantile does: linear interpolation inside the bucket that
// holds the rank, the lower bound of the first bucket taken as 0. A rank in
// the +Inf bucket gives the highest finite bound. NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 || len(h.Bounds) < 2 {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(h.Counts), func(i int) bool { return h.Counts[i] >= rank })
	if i >= len(h.Bounds)-1 {
		return h.Bounds[len(h.Bounds)-2]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.Bounds[i-1], h.Counts[i-1]
	}
	inBucket := h.Counts[i] - below
	if inBucket == 0 {
		return h.Bounds[i]
	}
	return lower + (h.Bounds[i]-lower)*(rank-below)/inBucket
}

// ParseHistogram finds the histogram called name in a Prometheus text
// exposition and sums its series.
func ParseHistogram(r io.Reader, name string) (Histogram, error) {
	families, err := parseFamilies(r)
	if err != nil {
		return Histogram{}, err
	}
	return histogramOf(families, name)
}

// parseFamilies parses a Prometheus text exposition.
func parseFamilies(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return families, nil
}

// histogramOf sums the series of the histogram called name.
func histogramOf(families map[string]*dto.MetricFamily, name string) (Histogram, error) {
	fam, ok := families[name]
	if !ok {
		return Histogram{}, nil // no observation yet: no series
	}
	if fam.GetType() != dto.MetricType_HISTOGRAM {
		return Histogram{}, fmt.Errorf("metric %s is a %s, not a histogram", name, fam.GetType())
	}
	var h Histogram
	for _, m := range fam.GetMetric() {
		buckets := m.GetHistogram().GetBucket()
		bounds := make([]float64, 0, len(buckets)+1)
		counts := make([]float64, 0, len(buckets)+1)
		for _, b := range buckets {
			if math.IsInf(b.GetUpperBound(), +1) {
				continue
			}
			bounds = append(bounds, b.GetUpperBound())
			counts = append(counts, float64(b.GetCumulativeCount()))
		}
		bounds = append(bounds, math.Inf(+1))
		counts = append(counts, float64(m.GetHistogram().GetSampleCount()))
		if h.Bounds == nil {
			h = Histogram{Bounds: bounds, Counts: counts}
			continue
		}
		if !slices.Equal(h.Bounds, bounds) {
			return Histogram{}, fmt.Errorf("metric %s: series with different buckets", name)
		}
		for i := range counts {
			h.Counts[i] += counts[i]
		}
	}
	return h, nil
}

// ScrapeHistogram fetches url (a /metrics endpoint) and parses the
// histogram called name.
func ScrapeHistogram(ctx context.Context, url, name string) (Histogram, error) {
	families, err := scrape(ctx, url)
	if err != nil {
		return Histogram{}, err
	}
	return histogramOf(families, name)
}

// ScrapeValues fetches url (a /metrics endpoint) and returns the value of
// each named gauge or counter (summed over its series) that it exports.
func ScrapeValues(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	families, err := scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range names {
		fam, ok := families[name]
		if !ok {
			continue
		}
		for _, m := range fam.GetMetric() {
			out[name] += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out, nil
}

// scrape fetches and parses a /metrics endpoint.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseFamilies(resp.Body)
}
