package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var flagDriftRuns = flag.Int("drift-runs", 7, "baseline runs in a row for BenchmarkBaselineDrift")

// BenchmarkBaselineDrift runs the delegation figure's baseline -drift-runs
// times in a row on a bed of its own, without Atoll: -pods pods created
// directly in the remote, master side and remote side pinned as for the
// figure, the namespace deleted after each run. Its table is why
// BenchmarkAtoll runs the baseline before and after each delegated run: a
// remote gets slower with the runs it has been through.
func BenchmarkBaselineDrift(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	var res Results
	bn := startBed(ctx, b, 1, *flagPods, &res)
	unpin, err := bn.pinSides()
	if err != nil {
		b.Fatal(err)
	}
	defer unpin()
	var first time.Duration
	for i := range *flagDriftRuns {
		d := bn.direct(ctx, nil, phase{name: fmt.Sprintf("baseline %d", i+1)})
		if i == 0 {
			first = d
		}
		res.Add(fmt.Sprintf("drift_%d_s", i+1), fmt.Sprintf("baseline run %d: %d pods created in the remote -> all Running; %.2f of the first", i+1, *flagPods, d.Seconds()/first.Seconds()), d.Seconds(), "s")
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "\nBaseline drift (%s)\n\n%s\n", machineLine(), table.String())
}
