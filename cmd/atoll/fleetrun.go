package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/atoll-dev/atoll/admission"
	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/vnode"
)

// fleetRuntime is what `atoll run` and `atoll watch` share: a vnode
// manager, the reconciler and the source, run together.
// allowExecUsage is the help of --allow-exec-credentials.
const allowExecUsage = "let kubeconfig Secrets run exec credential plugins (programs on Atoll's machine); refused by default"

type fleetRuntime struct {
	masterConfig *rest.Config
	master       kubernetes.Interface
	namespace    string
	nodeIP       string
	source       interface {
		reconcile.Source
		Run(ctx context.Context) error
		Ready() <-chan struct{}
	}
	reconcile reconcile.Config // Source, Nodes, Master, Namespace filled in here
	kubelet   kubeletAPIOptions
	sync      syncOptions
	// allowExec lets kubeconfig Secrets run credential plugins.
	allowExec bool
	// background runs beside the nodes, e.g. the commit-status queue.
	background map[string]func(context.Context) error
	// admission, if set, keeps the admission webhook's configuration
	// matching the declared tolerateIn rules.
	admission *admission.Configurer
	registry  prometheus.Registerer
	log       *slog.Logger
	// onReady, if set, receives the reconciler once it is built.
	onReady func(*reconcile.Reconciler)
}

// managerConfig is the config of the runtime's vnode manager.
func (f *fleetRuntime) managerConfig() vnode.ManagerConfig {
	c := vnode.ManagerConfig{
		Master: f.masterConfig, NodeIP: f.nodeIP, KubeletPort: int32(f.kubelet.port),
		Logger: f.log.With("component", "vnode"), Registerer: f.registry,
	}
	f.sync.apply(&c)
	return c
}

// run blocks until ctx is cancelled or a part fails.
func (f *fleetRuntime) run(ctx context.Context) error {
	m, err := vnode.NewManager(f.managerConfig())
	if err != nil {
		return err
	}
	kubeletAPI, err := f.kubelet.server(m, f.master, f.nodeIP, f.log)
	if err != nil {
		return err
	}
	cfg := f.reconcile
	cfg.Source = f.source
	nodes := &managerNodes{m: m, master: f.master, namespace: f.namespace, timeout: 15 * time.Second, log: f.log.With("component", "credentials"), allowExec: f.allowExec}
	if f.admission != nil {
		nodes.rules = admission.NewRuleSet()
	}
	cfg.Nodes = nodes
	cfg.Master = f.master
	cfg.Namespace = f.namespace
	cfg.Registerer = f.registry
	cfg.Logger = f.log.With("component", "reconcile")
	r, err := reconcile.New(cfg)
	if err != nil {
		return err
	}
	if f.onReady != nil {
		f.onReady(r)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 5+len(f.background))
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	start("vnode manager", m.Run)
	start("kubelet API", kubeletAPI.Run)
	start("source", f.source.Run)
	start("credentials", nodes.watchCredentials)
	if f.admission != nil {
		start("admission webhook configuration", func(ctx context.Context) error { return f.admission.Run(ctx, nodes.rules, r.Ready()) })
	}
	for name, run := range f.background {
		start(name, run)
	}
	// The source watches before the first fetch, so no change between the
	// two is missed.
	select {
	case <-f.source.Ready():
		start("reconciler", r.Run)
	case <-ctx.Done():
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
