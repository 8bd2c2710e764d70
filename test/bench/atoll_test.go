package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/gitserver"
)

// webhookToken is the push webhook's secret in every `atoll run` here.
const webhookToken = "bench-s3cret"

// fleetRepo is the fleet repository the `atoll run` processes follow,
// served by the real git http-backend. Each process follows its own path.
type fleetRepo struct {
	repo *gitserver.Repo
	srv  *gitserver.Server
	url  string
}

func newFleetRepo(tb testing.TB) *fleetRepo {
	repo := gitserver.NewRepo(tb)
	repo.Commit(map[string]string{"README.md": "Atoll benchmark fleet\n"}, "start")
	repo.Push("main")
	srv := gitserver.Start(tb, repo.Root, gitserver.Options{Push: true}) // Atoll pushes its statuses as git notes
	return &fleetRepo{repo: repo, srv: srv, url: srv.RepoURL(repo)}
}

// commit commits files, pushes and returns the SHA.
func (r *fleetRepo) commit(files map[string]string, msg string) string {
	sha := r.repo.Commit(files, msg)
	r.repo.Push("main")
	return sha
}

// atollRun is one `atoll run` process of the bench.
type atollRun struct {
	p           *fleettest.Atoll
	namespace   string // Atoll's own namespace
	httpAddr    string // --http-addr: the webhook
	metricsAddr string // --metrics-addr: /metrics and /debug/pprof/
	cacheDir    string
}

func (a *atollRun) metricsURL() string { return "http://" + a.metricsAddr + "/metrics" }
func (a *atollRun) hookURL() string    { return "http://" + a.httpAddr + "/hooks/git" }

// startAtollRun starts `atoll run` following path of the repository, with
// its own namespace holding the remotes' kubeconfig Secrets. Polling is
// off (1h): after the first fetch only the webhook fetches.
func (bn *bench) startAtollRun(r *fleetRepo, name, path string) *atollRun {
	bn.b.Helper()
	ns := fleettest.Namespace(bn.b, bn.master, "atoll-bench-"+name)
	fleettest.KubeconfigSecrets(bn.b, bn.master, ns, bn.env.Remotes)
	a := &atollRun{namespace: ns, httpAddr: fleettest.FreeAddr(bn.b), metricsAddr: fleettest.FreeAddr(bn.b), cacheDir: bn.b.TempDir()}
	secret := filepath.Join(bn.b.TempDir(), "webhook-secret")
	if err := os.WriteFile(secret, []byte(webhookToken), 0o600); err != nil {
		bn.b.Fatal(err)
	}
	a.p = fleettest.StartAtoll(bn.b, bn.env, bn.bin, name,
		"run", "--repo", r.url, "--ref", "main", "--path", path, "--interval", "1h", "--allow-insecure-http",
		"--kubeconfig", bn.env.Master.Kubeconfig, "--namespace", ns, "--http-addr", a.httpAddr, "--metrics-addr", a.metricsAddr, "--cache-dir", a.cacheDir,
		"--node-ip", "127.0.0.1", "--leader-elect=false", "--webhook-secret-file", secret, "--log-level", "info",
		"--profiling="+strconv.FormatBool(bn.profiles != ""))
	return a
}

// clusterFile is the fleet file declaring cluster name on remote.
func (bn *bench) clusterFile(path, name string, remote int) (string, string) {
	return path + "/" + name + ".yaml", fleettest.ClusterYAML(name, "secret:"+fleettest.SecretName(bn.env.Remotes[remote].Name))
}

// waitNodes waits until every node named in names is Ready in the master.
func (bn *bench) waitNodes(ctx context.Context, names []string, timeout time.Duration) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := bn.master.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for i := range l.Items {
			if want[l.Items[i].Name] && fleettest.IsNodeReady(&l.Items[i]) {
				ready++
			}
		}
		last = fmt.Sprintf("%d/%d Ready", ready, len(want))
		return ready == len(want), nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d virtual nodes (%s): %w", len(want), last, err)
	}
	return nil
}

// idleNodes measures `atoll run` holding many idle virtual nodes (two
// remotes, alternately): the process's RSS and CPU once all are Ready.
func (bn *bench) idleNodes(ctx context.Context, r *fleetRepo) {
	n := *flagIdleNodes
	files := map[string]string{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("idle-%03d", i)
		f, c := bn.clusterFile("idle", name, i%len(bn.env.Remotes))
		files[f] = c
		names = append(names, name)
	}
	r.commit(files, fmt.Sprintf("%d idle clusters", n))
	a := bn.startAtollRun(r, "idle", "idle")
	start := time.Now()
	if err := bn.waitNodes(ctx, names, 5*time.Minute); err != nil {
		bn.b.Fatal(err)
	}
	bn.res.Add("idle_nodes_ready_s", fmt.Sprintf("%d virtual nodes Ready after start", n), time.Since(start).Seconds(), "s")
	s, err := Sample(ctx, a.p.Pid(), *flagWindow)
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.heapProfile(ctx, a, "heap-idle-nodes.pprof")
	bn.res.AddTarget("rss_50_idle_nodes_mb", fmt.Sprintf("RSS, %d idle virtual nodes (max over %s)", n, *flagWindow), MB(s.MaxRSS), "MB", AtMost, 150)
	bn.res.Add("cpu_50_idle_nodes_cores", fmt.Sprintf("CPU, %d idle virtual nodes", n), s.Cores(), "cores")
	bn.memoryFigures(ctx, a, "mem_idle_nodes", fmt.Sprintf("%d idle nodes", n))
	a.p.Kill()
	if err := fleettest.DeleteNodes(ctx, bn.master); err != nil {
		bn.b.Fatal(err)
	}
}

// startRun starts the `atoll run` that the remaining figures measure, with
// one virtual node "bench" on the first remote, and waits until the node
// is Ready and offers room for every pod the bench will bind to it.
func (bn *bench) startRun(ctx context.Context, r *fleetRepo) *atollRun {
	f, c := bn.clusterFile("fleet", "bench", 0)
	r.commit(map[string]string{f: c}, "add bench")
	a := bn.startAtollRun(r, "run", "fleet")
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := bn.master.CoreV1().Nodes().Get(ctx, "bench", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return fleettest.IsNodeReady(n) && n.Status.Allocatable.Pods().Value() >= int64(*flagFootprintPods), nil
	})
	if err != nil {
		bn.b.Fatalf("virtual node bench not Ready with room for %d pods: %v", *flagFootprintPods, err)
	}
	return a
}

// commitToReady pushes commits that each add a cluster and posts the push
// webhook, timing push -> virtual node Ready; then it removes them, and
// posts webhooks for the unchanged head, counting what was fetched.
func (bn *bench) commitToReady(ctx context.Context, r *fleetRepo, a *atollRun) {
	const adds = 3
	var samples []time.Duration
	var names []string
	for i := range adds {
		name := fmt.Sprintf("hook-%d", i+1)
		names = append(names, name)
		ready := watchNodeReady(ctx, bn.master, name)
		f, c := bn.clusterFile("fleet", name, 1)
		r.commit(map[string]string{f: c}, "add "+name)
		pushed := time.Now()
		if code, err := fleettest.PostWebhook(ctx, a.hookURL(), webhookToken); err != nil || code != 202 {
			bn.b.Fatalf("webhook = %d, %v; want 202", code, err)
		}
		select {
		case at := <-ready:
			samples = append(samples, at.Sub(pushed))
		case <-time.After(2 * time.Minute):
			bn.b.Fatalf("virtual node %s not Ready 2 minutes after its commit", name)
		}
	}
	bn.res.AddTarget("commit_to_ready_s", fmt.Sprintf("commit pushed -> virtual node Ready via webhook, median of %d", adds),
		PercentileMS(samples, 50)/1000, "s", AtMost, 2)
	bn.res.Add("commit_to_ready_max_s", "commit pushed -> virtual node Ready, slowest", PercentileMS(samples, 100)/1000, "s")

	files := map[string]string{}
	for _, n := range names {
		files["fleet/"+n+".yaml"] = ""
	}
	r.commit(files, fmt.Sprintf("remove the hook clusters\n\n%s: %d", reconcile.AllowRemovalTrailer, adds))
	if code, err := fleettest.PostWebhook(ctx, a.hookURL(), webhookToken); err != nil || code != 202 {
		bn.b.Fatalf("webhook = %d, %v; want 202", code, err)
	}
	for _, n := range names {
		if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			return fleettest.NodeGone(ctx, bn.master, n)
		}); err != nil {
			bn.b.Fatalf("virtual node %s not removed: %v", n, err)
		}
	}

	// The head does not move now: each webhook costs a ref advertisement
	// and nothing else.
	objects, err := a.fetchedObjects()
	if err != nil {
		bn.b.Fatal(err)
	}
	packs, refs := r.srv.UploadPacks(), r.srv.InfoRefs()
	const polls = 3
	for i := range polls {
		if code, err := fleettest.PostWebhook(ctx, a.hookURL(), webhookToken); err != nil || code != 202 {
			bn.b.Fatalf("webhook = %d, %v; want 202", code, err)
		}
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return r.srv.InfoRefs() >= refs+int64(i+1), nil
		}); err != nil {
			bn.b.Fatalf("webhook %d did not make Atoll ask for the refs: %v", i+1, err)
		}
	}
	// A fetch would follow its ref advertisement at once; give it a second.
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Second, true, func(context.Context) (bool, error) {
		return r.srv.UploadPacks() > packs, nil
	})
	after, err := a.fetchedObjects()
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.res.AddTarget("unchanged_poll_objects", fmt.Sprintf("git objects fetched for %d webhooks on an unchanged head", polls), float64(after-objects), "", Exactly, 0)
	bn.res.Add("unchanged_poll_upload_packs", "upload-pack requests for those webhooks", float64(r.srv.UploadPacks()-packs), "")
}

// fetchedObjects counts the git objects in Atoll's repository cache, but
// not those of its own status notes (cache-dir/notes): Atoll writes a note
// when a revision's outcome is known, which can be after its nodes are.
func (a *atollRun) fetchedObjects() (int, error) {
	all, err := CountGitObjects(a.cacheDir)
	if err != nil {
		return 0, err
	}
	notes, err := CountGitObjects(filepath.Join(a.cacheDir, "notes"))
	return all - notes, err
}

// watchNodeReady reports the time the master's node name is first seen
// Ready, watching from now (the watch is open when it returns).
func watchNodeReady(ctx context.Context, master kubernetes.Interface, name string) <-chan time.Time {
	out := make(chan time.Time, 1)
	synced := make(chan struct{})
	lw := cache.NewListWatchFromClient(master.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	inf := cache.NewSharedIndexInformer(lw, &corev1.Node{}, 0, cache.Indexers{})
	ctx, cancel := context.WithCancel(ctx)
	seen := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && fleettest.IsNodeReady(n) {
			select {
			case out <- time.Now():
			default:
			}
			cancel()
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: seen, UpdateFunc: func(_, n any) { seen(n) }})
	go inf.Run(ctx.Done())
	go func() { cache.WaitForCacheSync(ctx.Done(), inf.HasSynced); close(synced) }()
	<-synced
	return out
}
