package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
)

// podRequests counts an apiserver's writes on pods so far, by verb and
// subresource ("update status", "create"), from apiserver_request_total,
// and the pod watches its watch cache closed because their client did not
// keep up ("watches closed as unresponsive", apiserver_terminated_watchers_total).
func podRequests(ctx context.Context, client kubernetes.Interface) (map[string]float64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(cctx)
	if err != nil {
		return nil, fmt.Errorf("apiserver metrics: %w", err)
	}
	families, err := parseFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("apiserver metrics: %w", err)
	}
	out := map[string]float64{}
	for _, m := range families["apiserver_terminated_watchers_total"].GetMetric() {
		for _, p := range m.GetLabel() {
			if p.GetName() == "resource" && p.GetValue() == "pods" {
				out[watchesClosed] += m.GetCounter().GetValue()
			}
		}
	}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["resource"] != "pods" || l["verb"] == "WATCH" || l["verb"] == "LIST" || l["verb"] == "GET" {
			continue
		}
		key := l["verb"]
		if l["subresource"] != "" {
			key += " " + l["subresource"]
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// watchesClosed is podRequests' key for pod watches closed as unresponsive.
const watchesClosed = "watches closed as unresponsive"

// requestUse is the pod writes each cluster served during one phase.
type requestUse struct {
	phase string
	pods  int
	byKey map[string]float64 // "master: PUT status" -> count
}

// measureRequests runs phase and records the pod writes of the master and
// the first remote meanwhile.
func (bn *bench) measureRequests(ctx context.Context, phase string, pods int, run func()) {
	clusters := map[string]kubernetes.Interface{"master": bn.master, "remote-1": bn.remotes[0]}
	before := map[string]map[string]float64{}
	for name, c := range clusters {
		r, err := podRequests(ctx, c)
		if err != nil {
			bn.b.Logf("requests: %v", err)
			run()
			return
		}
		before[name] = r
	}
	run()
	u := requestUse{phase: phase, pods: pods, byKey: map[string]float64{}}
	for name, c := range clusters {
		r, err := podRequests(ctx, c)
		if err != nil {
			bn.b.Logf("requests: %v", err)
			return
		}
		for k, v := range r {
			if d := v - before[name][k]; d > 0 {
				u.byKey[name+": "+k] = d
			}
		}
	}
	bn.requests = append(bn.requests, u)
}

// writeRequests prints the pod writes per pod of each phase, and the pod
// watches closed as unresponsive in all.
func writeRequests(w io.Writer, uses []requestUse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, u := range uses {
		fmt.Fprintf(tw, "POD WRITES, %s (%d pods)\tper pod\t\n", u.phase, u.pods)
		var closed []string
		keys := make([]string, 0, len(u.byKey))
		for k := range u.byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasSuffix(k, watchesClosed) {
				closed = append(closed, k)
				continue
			}
			fmt.Fprintf(tw, "%s\t%.2f\t\n", k, u.byKey[k]/float64(u.pods))
		}
		for _, k := range closed {
			fmt.Fprintf(tw, "%s\t%.0f in all\t\n", k, u.byKey[k])
		}
	}
	return tw.Flush()
}
