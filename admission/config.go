package admission

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Configurer writes the webhook configuration: one webhook per rule.
type Configurer struct {
	// Client reaches the master.
	Client kubernetes.Interface
	// Name of the MutatingWebhookConfiguration (deploy/master ships it
	// empty; it is created if missing).
	Name string
	// CABundle is the PEM CA the API server trusts the webhook with.
	CABundle []byte
	// URL is where the API server reaches the webhook (https://host:port,
	// for an Atoll outside the master); when empty, Service is used.
	URL string
	// Service, in Namespace on Port, fronts the webhook inside the master.
	Service   string
	Namespace string
	Port      int32
	// RequestTimeout bounds each API call (default 15s).
	RequestTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// webhookSuffix makes a policy's name a webhook's (fully qualified) name.
const webhookSuffix = ".tolerate.atoll.dev"

// Apply makes the webhook configuration hold exactly rules.
func (c *Configurer) Apply(ctx context.Context, rules []Rule) error {
	want, err := c.webhooks(rules)
	if err != nil {
		return err
	}
	tolerations, err := encodeTolerations(rules)
	if err != nil {
		return err
	}
	api := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	timeout := c.RequestTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cur, err := api.Get(cctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		obj := &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: c.Name, Annotations: map[string]string{AnnotationTolerations: tolerations}},
			Webhooks:   want,
		}
		if _, err := api.Create(cctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create webhook configuration %s: %w", c.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get webhook configuration %s: %w", c.Name, err)
	}
	if cur.Annotations[AnnotationTolerations] == tolerations && equality.Semantic.DeepEqual(cur.Webhooks, want) {
		return nil
	}
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[AnnotationTolerations] = tolerations
	cur.Webhooks = want
	if _, err := api.Update(cctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update webhook configuration %s: %w", c.Name, err)
	}
	return nil
}

// Run applies set's rules once ready is closed (the reconciler's first
// pass: every declared node's rules are in set then) and whenever set
// changes after, until ctx ends; a failed write is retried.
func (c *Configurer) Run(ctx context.Context, set *RuleSet, ready <-chan struct{}) error {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	// The first write comes at once, even with no rules: it removes the
	// webhooks of policies gone while no leader ran.
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-set.Changed():
		case <-retry.C:
		}
		if err := c.Apply(ctx, set.Rules()); err != nil {
			log.Warn("webhook configuration not written; retrying", "err", err)
			retry.Reset(5 * time.Second)
		}
	}
}

// webhooks builds one webhook per rule, with the API server's defaults
// written out so that an unchanged configuration compares equal.
func (c *Configurer) webhooks(rules []Rule) ([]admissionregistrationv1.MutatingWebhook, error) {
	out := make([]admissionregistrationv1.MutatingWebhook, 0, len(rules))
	for _, r := range rules {
		sel, err := metav1.ParseToLabelSelector(r.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("policy %s: namespace selector %q: %w", r.Policy, r.NamespaceSelector, err)
		}
		if sel.MatchLabels == nil && sel.MatchExpressions == nil {
			sel = &metav1.LabelSelector{}
		}
		client := admissionregistrationv1.WebhookClientConfig{CABundle: c.CABundle}
		if c.URL != "" {
			client.URL = ptr.To(c.URL + PathPrefix + r.Policy)
		} else {
			client.Service = &admissionregistrationv1.ServiceReference{
				Namespace: c.Namespace, Name: c.Service, Path: ptr.To(PathPrefix + r.Policy), Port: ptr.To(c.Port),
			}
		}
		scope := admissionregistrationv1.NamespacedScope
		out = append(out, admissionregistrationv1.MutatingWebhook{
			Name:         r.Policy + webhookSuffix,
			ClientConfig: client,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       sel,
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To(int32(5)),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		})
	}
	return out, nil
}
