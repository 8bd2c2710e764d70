package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Options say what bed to start.
type Options struct {
	// Dir holds the bed's state: kubeconfigs, certificates, etcd data, logs.
	// Empty means a new temporary directory, removed by Stop.
	Dir string
	// Remotes is the number of remote clusters (default 2).
	Remotes int
	// NodesPerRemote is the number of kwok nodes in each remote (default 3).
	NodesPerRemote int
	// Node is the capacity of each kwok node.
	Node NodeShape
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// EtcdPerCluster gives every cluster an etcd of its own (named
	// "CLUSTER/etcd"), as separate clusters have; by default one etcd
	// holds them all, each under its own prefix, which is cheaper.
	EtcdPerCluster bool
	// Profiling makes the apiservers serve /debug/pprof (to users with
	// the right to GET that path); off, as in a hardened cluster, by default.
	Profiling bool

	// detached processes outlive the caller (the `up` command).
	detached bool
}

func (o *Options) defaults() {
	if o.Remotes == 0 {
		o.Remotes = 2
	}
	if o.NodesPerRemote == 0 {
		o.NodesPerRemote = 3
	}
	if o.Node.CPU == "" {
		o.Node.CPU = "32"
	}
	if o.Node.Memory == "" {
		o.Node.Memory = "256Gi"
	}
	if o.Node.Pods == 0 {
		o.Node.Pods = 110
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Env is a running bed: etcd, a master and the remotes.
type Env struct {
	Dir     string
	Master  *Cluster
	Remotes []*Cluster

	etcds  []*Process
	ownDir bool
}

// stateFile records what `up` started, for `down` and `status`.
const stateFile = "testenv.json"

type state struct {
	Processes []Process `json:"processes"`
	Clusters  []struct {
		Name       string `json:"name"`
		Server     string `json:"server"`
		Kubeconfig string `json:"kubeconfig"`
	} `json:"clusters"`
}

// Start builds the binaries if they are missing, then starts a master and
// opts.Remotes remote clusters on loopback. It returns once every apiserver
// is ready, every kwok node is Ready and every cluster has its default
// service account. Call Stop when done; a test binary that dies takes the
// bed's processes with it.
//
//	func TestMain(m *testing.M) {
//		env, err := testenv.Start(context.Background(), testenv.Options{Remotes: 2})
//		if err != nil { log.Fatal(err) }
//		code := m.Run()
//		env.Stop()
//		os.Exit(code)
//	}
func Start(ctx context.Context, opts Options) (*Env, error) {
	opts.defaults()
	bin, err := Build(ctx, opts.Log)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: opts.Dir}
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "atoll-testenv-"); err != nil {
			return nil, err
		}
		e.ownDir = true
	}
	if e.Dir, err = filepath.Abs(e.Dir); err != nil {
		return nil, err
	}
	if st, err := readState(e.Dir); err == nil {
		for _, p := range st.Processes {
			if p.Running() {
				return nil, fmt.Errorf("a bed already runs in %s (%s, pid %d): run `go run ./test/env down --dir %s` first", e.Dir, p.Name, p.Pid, e.Dir)
			}
		}
	}
	if err := e.start(ctx, bin, opts); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.Stop(stopCtx)
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context, bin Binaries, opts Options) error {
	started := time.Now()
	if err := os.MkdirAll(filepath.Join(e.Dir, "logs"), 0o755); err != nil {
		return err
	}
	names := []string{"master"}
	for i := 1; i <= opts.Remotes; i++ {
		names = append(names, "remote-"+strconv.Itoa(i))
	}
	etcdNames := []string{"etcd"}
	if opts.EtcdPerCluster {
		etcdNames = nil
		for _, n := range names {
			etcdNames = append(etcdNames, n+"/etcd")
		}
	}
	ports, err := freePorts(2*len(etcdNames) + 2*len(names))
	if err != nil {
		return err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }

	// Each cluster keeps its objects under its own prefix, in one shared
	// etcd or in its own.
	etcdURLs := map[string]string{}
	for _, en := range etcdNames {
		clientPort, peerPort := next(), next()
		etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		file := strings.ReplaceAll(en, "/", "-")
		p := &Process{
			Name: en,
			Path: bin.Etcd,
			Log:  filepath.Join(e.Dir, "logs", file+".log"),
			Args: []string{
				"--name=testenv",
				"--data-dir=" + filepath.Join(e.Dir, "etcd", file),
				"--listen-client-urls=" + etcdURL,
				"--advertise-client-urls=" + etcdURL,
				"--listen-peer-urls=" + peerURL,
				"--initial-advertise-peer-urls=" + peerURL,
				"--initial-cluster=testenv=" + peerURL,
				"--unsafe-no-fsync=true",
				"--quota-backend-bytes=8589934592",
				"--log-level=warn",
			},
		}
		e.etcds = append(e.etcds, p)
		if err := p.start(opts.detached); err != nil {
			return err
		}
		if err := waitHTTP(ctx, etcdURL+"/health", p); err != nil {
			return err
		}
		fmt.Fprintf(opts.Log, "testenv: %s ready at %s\n", en, etcdURL)
		etcdURLs[strings.TrimSuffix(en, "/etcd")] = etcdURL
	}
	etcdFor := func(cluster string) string {
		if u, ok := etcdURLs[cluster]; ok {
			return u
		}
		return etcdURLs["etcd"]
	}

	clusters := make([]*Cluster, len(names))
	files := make([]map[string]string, len(names))
	kwokPorts := make([]int, len(names))
	for i, name := range names {
		c := &Cluster{Name: name, dir: filepath.Join(e.Dir, name), Kubeconfig: filepath.Join(e.Dir, name+".kubeconfig")}
		if files[i], err = c.pki(next()); err != nil {
			return fmt.Errorf("certificates for %s: %w", name, err)
		}
		kwokPorts[i] = next()
		port, _ := strconv.Atoi(c.Server[len("https://127.0.0.1:"):])
		c.apiserver = c.apiserverProcess(bin, e.Dir, etcdFor(name), port, files[i], opts.Profiling)
		if err := c.apiserver.start(opts.detached); err != nil {
			return err
		}
		clusters[i] = c
	}
	e.Master, e.Remotes = clusters[0], clusters[1:]

	g, gctx := errgroup.WithContext(ctx)
	for i, c := range clusters {
		g.Go(func() error {
			if err := c.waitReady(gctx); err != nil {
				return err
			}
			sched, err := c.schedulerProcess(bin, e.Dir, files[i])
			if err != nil {
				return err
			}
			procs := []*Process{sched, c.controllerManagerProcess(bin, e.Dir, files[i])}
			if c.Name == "master" {
				if err := c.bindKubeletClient(gctx); err != nil {
					return err
				}
			} else {
				if err := c.createNodes(gctx, opts.NodesPerRemote, opts.Node); err != nil {
					return err
				}
				kwok, err := c.kwokProcess(bin, e.Dir, kwokPorts[i], files[i])
				if err != nil {
					return err
				}
				procs = append(procs, kwok)
			}
			for _, p := range procs {
				if err := p.start(opts.detached); err != nil {
					return err
				}
				c.others = append(c.others, p)
			}
			want := opts.NodesPerRemote
			if c.Name == "master" {
				want = 0
			}
			return c.waitSettled(gctx, want)
		})
	}
	err = g.Wait()
	if werr := e.writeState(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Log, "testenv: master and %d remotes ready in %s (state in %s)\n", opts.Remotes, time.Since(started).Round(100*time.Millisecond), e.Dir)
	return nil
}

// Clusters returns the master followed by the remotes.
func (e *Env) Clusters() []*Cluster {
	return append([]*Cluster{e.Master}, e.Remotes...)
}

// processes lists what the bed started, in the order to stop it: kwok and
// controllers first, then apiservers, etcd last.
func (e *Env) processes() []*Process {
	var ps []*Process
	for _, c := range e.Clusters() {
		if c != nil {
			ps = append(ps, c.others...)
		}
	}
	for _, c := range e.Clusters() {
		if c != nil && c.apiserver != nil {
			ps = append(ps, c.apiserver)
		}
	}
	ps = append(ps, e.etcds...)
	return ps
}

// Stop stops every process of the bed and, if Start made the directory,
// removes it.
func (e *Env) Stop(ctx context.Context) error {
	var errs []error
	for _, p := range e.processes() {
		errs = append(errs, p.stop(ctx, 10*time.Second))
	}
	if e.ownDir {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

func (e *Env) writeState() error {
	var st state
	for _, p := range e.processes() {
		st.Processes = append(st.Processes, *p)
	}
	for _, c := range e.Clusters() {
		if c == nil {
			continue
		}
		st.Clusters = append(st.Clusters, struct {
			Name       string `json:"name"`
			Server     string `json:"server"`
			Kubeconfig string `json:"kubeconfig"`
		}{c.Name, c.Server, c.Kubeconfig})
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.Dir, stateFile), data, 0o644)
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// Up starts a bed whose processes outlive the caller, for the `up` command.
func Up(ctx context.Context, opts Options) (*Env, error) {
	if opts.Dir == "" {
		return nil, errors.New("up needs a directory (--dir)")
	}
	opts.detached = true
	return Start(ctx, opts)
}

// Down stops exactly the processes recorded in dir's state file (by pid,
// checking each pid still runs the recorded program) and removes the bed's
// data. It returns the processes it stopped.
func Down(ctx context.Context, dir string) ([]Process, error) {
	st, err := readState(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no bed in %s (no %s)", dir, stateFile)
		}
		return nil, err
	}
	var errs []error
	for i := range st.Processes {
		errs = append(errs, st.Processes[i].stop(ctx, 10*time.Second))
	}
	if err := errors.Join(errs...); err != nil {
		return st.Processes, err
	}
	for _, name := range []string{"etcd", "logs", stateFile} {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, name)))
	}
	for _, c := range st.Clusters {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, c.Name)), os.Remove(c.Kubeconfig))
	}
	return st.Processes, errors.Join(errs...)
}

// Status returns the processes recorded in dir's state file; Running tells
// whether each still runs.
func Status(dir string) ([]Process, error) {
	st, err := readState(dir)
	if err != nil {
		return nil, err
	}
	return st.Processes, nil
}

// freePorts asks the kernel for n free loopback ports, holding all of them
// open until every one is chosen so none is handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200, or p exits.
func waitHTTP(ctx context.Context, url string, p *Process) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("%s exited", p.Name)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s (log %s): %w", p.Name, p.Log, err)
	}
	return nil
}

// FreePort returns a loopback TCP port that is free now, for a test to give
// to a server it starts.
func FreePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}
