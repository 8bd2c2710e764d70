package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
)

var (
	flagPods          = flag.Int("pods", 2000, "pods in the delegation-vs-direct run")
	flagRounds        = flag.Int("rounds", 3, "delegated runs in the delegation-vs-direct figure, each between two baseline runs")
	flagFootprintPods = flag.Int("footprint-pods", 10000, "delegated pods on one virtual node for the footprint figure")
	flagIdleNodes     = flag.Int("idle-nodes", 50, "idle virtual nodes for the footprint figure")
	flagSyncRate      = flag.Int("sync-rate", 50, "remote pod status changes per second in the status-sync run")
	flagSyncSeconds   = flag.Int("sync-seconds", 20, "how long the status-sync run lasts")
	flagWindow        = flag.Duration("window", 30*time.Second, "how long a footprint is sampled once the state is reached")
	flagOut           = flag.String("out", "out/results.json", "where the JSON results go")
	flagProfiles      = flag.Bool("profiles", false, "save Atoll's heap profiles at each footprint, and CPU profiles of Atoll and the remote's kube-apiserver in the delegation run, next to the results")
)

// podsPerKwokNode is how many pods each fake node of the remotes holds.
const podsPerKwokNode = 1000

// bench is one run's shared state.
type bench struct {
	b        *testing.B
	env      *testenv.Env
	master   kubernetes.Interface
	remotes  []kubernetes.Interface
	bin      string
	res      *Results
	cpu      []cpuUse     // CPU by process, per phase
	requests []requestUse // pod writes by cluster, per phase
	// profiles is where heap and CPU profiles of Atoll go (-profiles).
	profiles string
}

// BenchmarkAtoll is `make bench`: every figure of the issue in one run on
// one bed, printed as a table and written as JSON. It runs once whatever
// -benchtime says (the Makefile passes 1x).
func BenchmarkAtoll(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	var res Results
	started := time.Now()

	// 1. Reconcile scale, before the bed takes the CPU.
	d, plan, err := MeasurePlan(ctx, b.TempDir(), 1000, true, 5)
	if err != nil {
		b.Fatal(err)
	}
	add, update, remove := plan.Counts()
	res.AddTarget("plan_1000_clusters_s", fmt.Sprintf("render+validate+plan, 1,000 clusters via kustomize (%d add, %d update, %d remove), median of 5", add, update, remove),
		d.Seconds(), "s", AtMost, 1)

	bn := startBed(ctx, b, 2, *flagFootprintPods, &res)
	bin, err := testenv.BuildAtoll(ctx, bn.env.Dir)
	if err != nil {
		b.Fatal(err)
	}
	bn.bin = bin
	if *flagProfiles {
		bn.profiles = filepath.Dir(*flagOut)
	}

	repo := newFleetRepo(b)
	bn.idleNodes(ctx, repo)              // 2. many idle virtual nodes
	run := bn.startRun(ctx, repo)        // 3. `atoll run` with one virtual node
	bn.commitToReady(ctx, repo, run)     //    commit -> Ready, unchanged head
	ns, have := bn.delegation(ctx, run)  // 4. delegated vs direct
	bn.statusSync(ctx, run, ns)          // 5. status-sync latency
	bn.footprintPods(ctx, run, ns, have) // 6. 10,000 delegated pods

	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		b.Fatal(err)
	}
	table.WriteString("\n")
	if err := writeCPU(&table, bn.cpu); err != nil {
		b.Fatal(err)
	}
	table.WriteString("\n")
	if err := writeRequests(&table, bn.requests); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "\nAtoll benchmarks (%s, %d CPUs, %s; %s)\n\n%s\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cpuModel(), time.Since(started).Round(time.Second), table.String())
	if err := res.WriteJSON(*flagOut); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(*flagOut), "results.txt"), []byte(machineLine()+"\n\n"+table.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "results: %s\n", *flagOut)
	if missed := res.Missed(); len(missed) > 0 {
		fmt.Fprintf(os.Stdout, "targets missed: %s\n", strings.Join(missed, ", "))
	}
}

// startBed starts a bed of a master and remotes kwok remotes with room for
// pods pods each, stopped when the benchmark ends, and the bench's clients
// to it.
func startBed(ctx context.Context, b *testing.B, remotes, pods int, res *Results) *bench {
	env, err := testenv.Start(ctx, testenv.Options{
		Remotes: remotes, NodesPerRemote: (pods*11/10 + podsPerKwokNode - 1) / podsPerKwokNode,
		Log: os.Stderr, EtcdPerCluster: true, Profiling: *flagProfiles,
		Node: testenv.NodeShape{CPU: "1000", Memory: "4Ti", Pods: podsPerKwokNode},
	})
	if err != nil {
		b.Fatal(err)
	}
	// Registered first, so it runs after every other cleanup (namespaces,
	// Atoll processes, the git server).
	b.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.Stop(stopCtx); err != nil {
			b.Logf("stop bed: %v", err)
		}
	})
	bn := &bench{b: b, env: env, res: res}
	if bn.master, err = kubernetes.NewForConfig(benchClient(env.Master.Config)); err != nil {
		b.Fatal(err)
	}
	for _, r := range env.Remotes {
		cs, err := kubernetes.NewForConfig(benchClient(r.Config))
		if err != nil {
			b.Fatal(err)
		}
		bn.remotes = append(bn.remotes, cs)
	}
	return bn
}

// benchClient is the bench's own client to a cluster: the same QPS and
// burst as Atoll's clients, so the baseline and Atoll are limited alike.
func benchClient(c *rest.Config) *rest.Config {
	rc := rest.CopyConfig(c)
	rc.QPS, rc.Burst = vnode.DefaultQPS, vnode.DefaultBurst
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.UserAgent = "atoll-bench"
	return rc
}

// cpuModel is the processor's name from /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// machineLine says what the figures were measured on.
func machineLine() string {
	kernel, _ := exec.Command("uname", "-r").Output()
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) >= 2 {
			mem = f[1] + " kB"
		}
	}
	return fmt.Sprintf("%s: %d CPUs (%s), %s memory, Linux %s, %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		runtime.NumCPU(), cpuModel(), mem, strings.TrimSpace(string(kernel)), runtime.Version())
}
