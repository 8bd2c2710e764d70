package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/vnode"
)

// DefaultDrainTimeout bounds how long a removed node is drained before it
// is deleted anyway.
const DefaultDrainTimeout = 5 * time.Minute

// ErrDrainTimeout is returned by Drain when pods remain at the deadline.
var ErrDrainTimeout = errors.New("drain timed out")

// Drainer evicts the pods of a node through the Eviction API, so
// PodDisruptionBudgets are respected: an eviction refused with 429 is
// retried until the deadline.
type Drainer struct {
	// Client reaches the master.
	Client kubernetes.Interface
	// Timeout bounds the whole drain (default DefaultDrainTimeout).
	Timeout time.Duration
	// Interval between eviction rounds (default 1s).
	Interval time.Duration
	// RequestTimeout bounds each API call (default 15s).
	RequestTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Progress, if set, is called after each round with the pods left.
	Progress func(node string, remaining int, elapsed time.Duration)
}

// Drain evicts every pod bound to node (DaemonSet pods and finished pods
// excepted) and waits until none is left. It returns ErrDrainTimeout
// (wrapped, with the count) if pods remain after the timeout, or ctx's
// error when cancelled.
func (d *Drainer) Drain(ctx context.Context, node string) error {
	timeout := cmpOr(d.Timeout, DefaultDrainTimeout)
	interval := cmpOr(d.Interval, time.Second)
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		pods, err := d.pods(ctx, node)
		if err != nil {
			log.Warn("drain: list pods", "node", node, "err", err)
		} else {
			if d.Progress != nil {
				d.Progress(node, len(pods), time.Since(start))
			}
			if len(pods) == 0 {
				return nil
			}
			for i := range pods {
				if pods[i].DeletionTimestamp != nil {
					continue
				}
				if err := d.evict(ctx, &pods[i]); err != nil {
					log.Info("drain: eviction refused, retrying", "node", node, "pod", pods[i].Namespace+"/"+pods[i].Name, "err", err)
				}
			}
		}
		if !time.Now().Before(deadline) {
			n := -1
			if err == nil {
				n = len(pods)
			}
			return fmt.Errorf("drain %s: %d pods left after %s: %w", node, n, timeout, ErrDrainTimeout)
		}
		t := time.NewTimer(min(interval, time.Until(deadline)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("drain %s: %w", node, ctx.Err())
		case <-t.C:
		}
	}
}

// pods lists the pods that still need to leave node.
func (d *Drainer) pods(ctx context.Context, node string) ([]corev1.Pod, error) {
	cctx, cancel := context.WithTimeout(ctx, cmpOr(d.RequestTimeout, 15*time.Second))
	defer cancel()
	list, err := d.Client.CoreV1().Pods(metav1.NamespaceAll).List(cctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list pods on %s: %w", node, err)
	}
	out := list.Items[:0]
	for _, p := range list.Items {
		if p.Spec.NodeName != node { // fakes ignore field selectors
			continue
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if vnode.IsDaemonSetPod(&p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// evict asks for one eviction. A pod already gone is not an error; a 429
// (a PodDisruptionBudget forbids it now) is returned for the caller to retry.
func (d *Drainer) evict(ctx context.Context, p *corev1.Pod) error {
	cctx, cancel := context.WithTimeout(ctx, cmpOr(d.RequestTimeout, 15*time.Second))
	defer cancel()
	err := d.Client.PolicyV1().Evictions(p.Namespace).Evict(cctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
	})
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("evict %s/%s: %w", p.Namespace, p.Name, err)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
