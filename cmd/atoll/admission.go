package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/admission"
	"github.com/atoll-dev/atoll/reconcile"
)

// admissionOptions are the flags of the tolerateIn admission webhook
// (`atoll run` and `atoll watch`).
type admissionOptions struct {
	addr      string
	url       string
	service   string
	port      int
	config    string
	tlsSecret string
}

func (o *admissionOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.addr, "admission-addr", "", `address of the admission webhook (TLS) that adds the tolerations of policies' tolerateIn; "" turns it off`)
	f.StringVar(&o.url, "admission-url", "", "https://host:port at which the master's API server reaches the webhook, for an Atoll outside the master (default: through --admission-service)")
	f.StringVar(&o.service, "admission-service", "atoll-admission", "Service in --namespace in front of the webhook")
	f.IntVar(&o.port, "admission-service-port", 443, "port of --admission-service")
	f.StringVar(&o.config, "admission-config", "atoll", "the MutatingWebhookConfiguration Atoll keeps (one webhook per policy with tolerateIn)")
	f.StringVar(&o.tlsSecret, "admission-tls-secret", "atoll-admission-tls", "Secret in --namespace with the webhook's CA and certificate, made when missing")
}

// hosts are the names the serving certificate must cover.
func (o *admissionOptions) hosts(namespace string) ([]string, error) {
	if o.url == "" {
		return []string{o.service + "." + namespace + ".svc", o.service + "." + namespace, o.service}, nil
	}
	u, err := url.Parse(o.url)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("--admission-url %q: want https://host[:port]", o.url)
	}
	return []string{u.Hostname()}, nil
}

// start serves the webhook on this replica until ctx ends (every replica
// answers alike) and returns what the leader writes its configuration
// with; nil, and nothing served, when --admission-addr is empty.
func (o *admissionOptions) start(ctx context.Context, client kubernetes.Interface, namespace string, log *slog.Logger) (*admission.Configurer, func(), error) {
	if o.addr == "" {
		return nil, func() {}, nil
	}
	hosts, err := o.hosts(namespace)
	if err != nil {
		return nil, nil, err
	}
	const timeout = 15 * time.Second
	cert, err := admission.EnsureServingCert(ctx, client, namespace, o.tlsSecret, hosts, timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("admission webhook: %w", err)
	}
	log = log.With("component", "admission")
	h := admission.NewHandler(client, o.config, log)
	go func() { _ = h.Run(ctx) }()
	stop, err := serveHTTP(o.addr, h, &tls.Config{Certificates: []tls.Certificate{cert.Certificate}, MinVersion: tls.VersionTLS12}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("--admission-addr: %w", err)
	}
	c := &admission.Configurer{
		Client: client, Name: o.config, CABundle: cert.CABundle, URL: o.url,
		Service: o.service, Namespace: namespace, Port: int32(o.port), RequestTimeout: timeout, Logger: log,
	}
	return c, stop, nil
}

// admissionRules turns a node's tolerateIn rules into the webhook's.
func admissionRules(spec reconcile.NodeSpec) []admission.Rule {
	out := make([]admission.Rule, 0, len(spec.TolerateIn))
	for _, r := range spec.TolerateIn {
		ar := admission.Rule{Policy: r.Policy, NamespaceSelector: r.NamespaceSelector}
		for _, t := range r.Taints {
			ar.Tolerations = append(ar.Tolerations, admission.TolerationFor(coreTaint(t)))
		}
		out = append(out, ar)
	}
	return out
}

// coreTaint is a declared taint as Kubernetes spells it.
func coreTaint(t reconcile.Taint) corev1.Taint {
	return corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
}
