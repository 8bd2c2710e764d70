package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

// defaultNamespace is Atoll's own namespace in the master.
const defaultNamespace = "atoll-system"

// masterOptions are the flags that reach the master, like kubectl's.
type masterOptions struct {
	kubeconfig string
	context    string
	namespace  string
	logLevel   string
}

func (o *masterOptions) addFlags(f *pflag.FlagSet, logLevel string) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the master cluster (default: $KUBECONFIG, else in-cluster)")
	f.StringVar(&o.context, "context", "", "context of the kubeconfig to use (default: its current context)")
	f.StringVarP(&o.namespace, "namespace", "n", defaultNamespace, "Atoll's own namespace in the master (Secrets, Lease, status)")
	f.StringVar(&o.logLevel, "log-level", logLevel, "debug, info, warn or error")
}

// logger returns a text logger on w at the chosen level, with client-go's
// klog routed into it.
func (o *masterOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(log.With("component", "client-go"))
	return log, nil
}

// master returns the master's config and a client.
func (o *masterOptions) master() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := loadKubeconfig(o.kubeconfig, o.context)
	if err != nil {
		return nil, nil, fmt.Errorf("master kubeconfig: %w", err)
	}
	cfg.UserAgent = "atoll"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("master client: %w", err)
	}
	return cfg, client, nil
}

// outputFormats are what -o takes besides a command's own table.
var outputFormats = []string{"json", "yaml"}

// checkOutput refuses an -o value that is neither table nor one of
// outputFormats.
func checkOutput(o string) error {
	if o != "table" && !slices.Contains(outputFormats, o) {
		return fmt.Errorf("unsupported -o %q: want table, json or yaml", o)
	}
	return nil
}

// writeOutput writes v as JSON or YAML (the same field names) for -o json
// and -o yaml, and reports false for -o table.
func writeOutput(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

// ensureNamespace creates Atoll's namespace if it is missing. An identity
// that may not create namespaces (deploy/master's) is given one that
// exists: a missing one shows in the first write to it.
func ensureNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := client.CoreV1().Namespaces().Create(cctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
