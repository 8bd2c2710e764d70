package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/atoll-dev/atoll/vnode"
)

// nodeOptions are the flags of `atoll node`.
type nodeOptions struct {
	name             string
	kubeconfig       string
	remoteKubeconfig string
	labels           []string
	taints           []string
	capacity         []string
	cordon           bool
	namespacePrefix  string
	masterID         string
	nodeIP           string
	metricsAddr      string
	sync             syncOptions
	logLevel         string
	kubelet          kubeletAPIOptions
}

func newNodeCommand() *cobra.Command {
	var o nodeOptions
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one virtual node standalone (for debugging and tests)",
		Long: `Run one remote cluster as one virtual node of the master, in the foreground,
until interrupted. Pods the master schedules on the node run in the remote
cluster; their status is mirrored back.`,
		Example: `  atoll node --name cern-001 --kubeconfig master.yaml --remote-kubeconfig cern.yaml \
      --label topology.kubernetes.io/region=geneva --taint virtual-kubelet.io/provider=atoll:NoSchedule`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "virtual node name (required)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the master cluster (default: $KUBECONFIG or in-cluster)")
	f.StringVar(&o.remoteKubeconfig, "remote-kubeconfig", "", "kubeconfig of the remote cluster (required)")
	f.StringArrayVar(&o.labels, "label", nil, "node label k=v (repeatable)")
	f.StringArrayVar(&o.taints, "taint", nil, "node taint k[=v]:Effect (repeatable)")
	f.StringArrayVar(&o.capacity, "capacity", nil, "capacity cap resource=quantity, e.g. cpu=400 (repeatable)")
	f.BoolVar(&o.cordon, "cordon", false, "mark the node unschedulable")
	f.StringVar(&o.namespacePrefix, "namespace-prefix", "", "prefix master namespaces with this in the remote (default: same names)")
	f.StringVar(&o.masterID, "master-id", "", "identity of this master on remote objects (default: hash of the master's kube-system UID)")
	f.StringVar(&o.nodeIP, "node-ip", "", "the node's InternalIP (default: first non-loopback IPv4)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (default: off)")
	o.sync.addFlags(f)
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.kubelet.addFlags(f)
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("remote-kubeconfig")
	return cmd
}

func runNode(ctx context.Context, o nodeOptions, stderr interface{ Write([]byte) (int, error) }) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(logger.With("component", "client-go"))

	spec, err := nodeSpecFromFlags(o)
	if err != nil {
		return err
	}
	master, err := loadKubeconfig(o.kubeconfig, "")
	if err != nil {
		return fmt.Errorf("master kubeconfig: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := vnode.ManagerConfig{
		Master: master, MasterID: o.masterID, NodeIP: o.nodeIP, Logger: logger, Registerer: reg,
		KubeletPort: int32(o.kubelet.port),
	}
	o.sync.apply(&cfg)
	m, err := vnode.NewManager(cfg)
	if err != nil {
		return err
	}
	if err := m.Add(spec); err != nil {
		return err
	}
	masterClient, err := kubernetes.NewForConfig(master)
	if err != nil {
		return fmt.Errorf("master client: %w", err)
	}
	kubeletAPI, err := o.kubelet.server(m, masterClient, o.nodeIP, logger)
	if err != nil {
		return err
	}
	if o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		stop, err := serveHTTP(o.metricsAddr, mux, nil, logger)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer stop()
	}
	return runWithKubeletAPI(ctx, kubeletAPI, m.Run)
}

func loadKubeconfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
}

// nodeSpecFromFlags turns the flags into a NodeSpec.
func nodeSpecFromFlags(o nodeOptions) (vnode.NodeSpec, error) {
	remote, err := clientcmd.BuildConfigFromFlags("", o.remoteKubeconfig)
	if err != nil {
		return vnode.NodeSpec{}, fmt.Errorf("remote kubeconfig: %w", err)
	}
	spec := vnode.NodeSpec{Name: o.name, Remote: remote, Cordon: o.cordon, Labels: map[string]string{}}
	if o.namespacePrefix != "" {
		spec.NamespaceMode, spec.NamespacePrefix = vnode.NamespacePrefix, o.namespacePrefix
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return spec, fmt.Errorf("--label %q: want key=value", l)
		}
		spec.Labels[k] = v
	}
	for _, t := range o.taints {
		taint, err := parseTaint(t)
		if err != nil {
			return spec, err
		}
		spec.Taints = append(spec.Taints, taint)
	}
	if len(o.capacity) > 0 {
		spec.Capacity = corev1.ResourceList{}
		for _, c := range o.capacity {
			k, v, ok := strings.Cut(c, "=")
			if !ok {
				return spec, fmt.Errorf("--capacity %q: want resource=quantity", c)
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return spec, fmt.Errorf("--capacity %q: %w", c, err)
			}
			spec.Capacity[corev1.ResourceName(k)] = q
		}
	}
	return spec, spec.Validate()
}

// parseTaint parses key[=value]:Effect.
func parseTaint(s string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || effect == "" {
		return corev1.Taint{}, fmt.Errorf("--taint %q: want key[=value]:Effect", s)
	}
	k, v, _ := strings.Cut(kv, "=")
	return corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}, nil
}
