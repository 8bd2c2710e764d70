package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/vnode/kubeletapi"
)

// kubeletAPIOptions are the flags of the kubelet API that every command
// running virtual nodes serves (logs, exec, attach, port-forward).
type kubeletAPIOptions struct {
	port     int
	clientCA string
	certFile string
	keyFile  string
	insecure bool
}

func (o *kubeletAPIOptions) addFlags(f *pflag.FlagSet) {
	f.IntVar(&o.port, "kubelet-port", 10250, "port of the kubelet API (logs, exec, attach, port-forward) the virtual nodes advertise")
	f.StringVar(&o.clientCA, "kubelet-client-ca-file", "", "CA whose client certificates the kubelet API accepts, typically the master's (the master apiserver's kubelet client certificate); bearer tokens are always checked with a TokenReview")
	f.StringVar(&o.certFile, "kubelet-tls-cert-file", "", "serving certificate of the kubelet API (default: self-signed for --node-ip)")
	f.StringVar(&o.keyFile, "kubelet-tls-key-file", "", "key of --kubelet-tls-cert-file")
	f.BoolVar(&o.insecure, "insecure-kubelet-api", false, "serve the kubelet API without authentication or authorization (local demos only)")
}

// server builds the kubelet API server for the virtual nodes of locator.
func (o *kubeletAPIOptions) server(locator kubeletapi.Locator, master kubernetes.Interface, nodeIP string, log *slog.Logger) (*kubeletapi.Server, error) {
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, fmt.Errorf("--kubelet-tls-cert-file and --kubelet-tls-key-file go together")
	}
	return kubeletapi.New(kubeletapi.Config{
		Addr:         net.JoinHostPort("", strconv.Itoa(o.port)),
		Locator:      locator,
		Master:       master,
		ClientCAFile: o.clientCA,
		TLSCertFile:  o.certFile,
		TLSKeyFile:   o.keyFile,
		NodeIP:       nodeIP,
		Insecure:     o.insecure,
		Logger:       log,
	})
}

// runWithKubeletAPI runs the virtual nodes (run) and their kubelet API
// together until ctx ends; the first to fail, say on a port already taken,
// stops both and its error is returned.
func runWithKubeletAPI(ctx context.Context, srv *kubeletapi.Server, run func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return run(gctx) })
	return g.Wait()
}
