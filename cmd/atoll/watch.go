package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/reconcile"
)

// watchOptions are the flags of `atoll watch`.
type watchOptions struct {
	masterOptions
	allowExec    bool
	dir          string
	root         string
	nodeIP       string
	drainTimeout time.Duration
	kubelet      kubeletAPIOptions
	sync         syncOptions
	admission    admissionOptions
}

func newWatchCommand() *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Apply a local fleet directory to the master, on every change (development)",
		Long: `Watch a fleet directory and keep the master's virtual nodes matching it:
each change is rendered, validated, planned and applied, and the plan and
its outcome are printed. Credentials may be kubeconfig paths (relative to
--dir). Ctrl-C stops the virtual nodes this process runs (their Node objects
stay until the next run removes or adopts them).`,
		Example: `  atoll watch --root .demo/fleet --dir .demo/fleet/overlays/dev --kubeconfig .demo/master.kubeconfig`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runWatch(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.addFlags(f, "warn")
	f.StringVar(&o.dir, "dir", "", "fleet directory to apply (required)")
	f.StringVar(&o.root, "root", "", "repository root that --dir's kustomization may load from, watched for changes (default: --dir)")
	f.StringVar(&o.nodeIP, "node-ip", "", "the virtual nodes' InternalIP (default: first non-loopback IPv4)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", reconcile.DefaultDrainTimeout, "how long a removed node is drained before it is deleted anyway")
	o.kubelet.addFlags(f)
	o.sync.addFlags(f)
	o.admission.addFlags(f)
	f.BoolVar(&o.allowExec, "allow-exec-credentials", false, allowExecUsage)
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func runWatch(ctx context.Context, o watchOptions, stdout, stderr io.Writer) error {
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	root := dir
	if o.root != "" {
		if root, err = filepath.Abs(o.root); err != nil {
			return err
		}
	}
	path, err := filepath.Rel(root, dir)
	if err != nil || path == ".." || strings.HasPrefix(path, "../") {
		return fmt.Errorf("--dir %s is not inside --root %s", o.dir, o.root)
	}
	cfg, client, err := o.master()
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, client, o.namespace); err != nil {
		return err
	}
	src, err := gitsource.NewDirSource(gitsource.DirConfig{Dir: root, Logger: log.With("component", "source")})
	if err != nil {
		return err
	}
	webhook, stopWebhook, err := o.admission.start(ctx, client, o.namespace, log)
	if err != nil {
		return err
	}
	defer stopWebhook()
	p := &watchPrinter{w: stdout}
	fmt.Fprintf(stdout, "atoll watch: applying %s to the master (namespace %s); Ctrl-C stops\n", o.dir, o.namespace)
	rt := &fleetRuntime{
		masterConfig: cfg, master: client, namespace: o.namespace, nodeIP: o.nodeIP, log: log,
		source: dirSource{src}, kubelet: o.kubelet, sync: o.sync, allowExec: o.allowExec, admission: webhook,
		reconcile: reconcile.Config{
			Path: filepath.ToSlash(path), Mode: reconcile.ModeWatch, DrainTimeout: o.drainTimeout,
			StatusContext: "atoll/watch", Observer: p.observe, RetryInterval: 2 * time.Second,
		},
	}
	err = rt.run(ctx)
	fmt.Fprintln(stdout, "atoll watch: stopped")
	return err
}

// dirSource is a DirSource as a reconcile.Source with Run.
type dirSource struct{ d *gitsource.DirSource }

func (s dirSource) Fetch(ctx context.Context) (reconcile.Snapshot, error) {
	return fleetSource{s.d}.Fetch(ctx)
}
func (s dirSource) Changes() <-chan struct{}      { return s.d.Changes() }
func (s dirSource) Run(ctx context.Context) error { return s.d.Run(ctx) }
func (s dirSource) Ready() <-chan struct{}        { return s.d.Ready() }

// watchPrinter prints the reconciler's progress for a terminal.
type watchPrinter struct {
	mu        sync.Mutex
	w         io.Writer
	lastDrain map[string]int
	lastPrint time.Time
}

func (p *watchPrinter) observe(ev reconcile.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := time.Now().Format("15:04:05")
	switch ev.Kind {
	case reconcile.ProgressPlan:
		fmt.Fprintf(p.w, "\n%s plan for %s:\n", ts, shortRev(ev.Revision))
		for _, line := range strings.Split(strings.TrimRight(ev.Plan.Text(), "\n"), "\n") {
			fmt.Fprintf(p.w, "  %s\n", line)
		}
	case reconcile.ProgressInvalid:
		fmt.Fprintf(p.w, "\n%s ✗ %s not applied, nothing changes:\n", ts, shortRev(ev.Revision))
		for _, line := range strings.Split(ev.Err.Error(), "\n") {
			fmt.Fprintf(p.w, "  %s\n", line)
		}
	case reconcile.ProgressDrain:
		if p.lastDrain == nil {
			p.lastDrain = map[string]int{}
		}
		last, seen := p.lastDrain[ev.Node]
		if !seen || last != ev.Remaining || time.Since(p.lastPrint) > 5*time.Second {
			fmt.Fprintf(p.w, "%s   %c draining %s: %d pods left (%s)\n", ts, spinner(ev.Elapsed), ev.Node, ev.Remaining, ev.Elapsed.Round(time.Second))
			p.lastDrain[ev.Node], p.lastPrint = ev.Remaining, time.Now()
		}
		if ev.Remaining == 0 {
			delete(p.lastDrain, ev.Node)
		}
	case reconcile.ProgressApplied:
		verb := map[reconcile.Action]string{reconcile.ActionAdd: "added", reconcile.ActionUpdate: "updated", reconcile.ActionRemove: "removed"}[ev.Action]
		if ev.Err != nil {
			fmt.Fprintf(p.w, "%s   ✗ %s %s: %v (retrying)\n", ts, ev.Action, ev.Node, ev.Err)
		} else {
			fmt.Fprintf(p.w, "%s   ✓ %s %s\n", ts, verb, ev.Node)
		}
	case reconcile.ProgressStatus:
		mark := map[reconcile.CommitState]string{reconcile.StatePending: "…", reconcile.StateSuccess: "✓", reconcile.StateFailure: "✗", reconcile.StateError: "-"}[ev.Status.State]
		fmt.Fprintf(p.w, "%s %s %s %s: %s\n", ts, mark, shortRev(ev.Revision), ev.Status.State, ev.Status.Description)
	case reconcile.ProgressFetchError:
		fmt.Fprintf(p.w, "%s ✗ reading the directory: %v\n", ts, ev.Err)
	}
}

func spinner(d time.Duration) rune {
	frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
	return frames[int(d/time.Second)%len(frames)]
}

func shortRev(rev string) string {
	rev = strings.TrimPrefix(rev, "sha256:")
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
