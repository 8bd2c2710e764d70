package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/deploy"
	"github.com/atoll-dev/atoll/reconcile"
)

// renewAt is the share of a token's lifetime after which Atoll renews it
// (the kubelet renews projected tokens at 80% too).
const renewAt = 0.8

// renewRetry is how long after a failed renewal it is tried again.
const renewRetry = time.Minute

// tokenTimes reads the issue and expiry times `atoll cluster add` (or a
// renewal) wrote on a kubeconfig Secret; ok is false for other Secrets.
func tokenTimes(s *corev1.Secret) (issued, expires time.Time, ok bool) {
	i, err1 := time.Parse(time.RFC3339, s.Annotations[annotationTokenIssued])
	e, err2 := time.Parse(time.RFC3339, s.Annotations[annotationTokenExpires])
	if err1 != nil || err2 != nil || s.Annotations[annotationTokenAccount] == "" || !e.After(i) {
		return time.Time{}, time.Time{}, false
	}
	return i, e, true
}

// renewDue reports whether the token of s should be renewed at now.
func renewDue(s *corev1.Secret, now time.Time) bool {
	issued, expires, ok := tokenTimes(s)
	if !ok {
		return false
	}
	return !now.Before(issued.Add(time.Duration(renewAt * float64(expires.Sub(issued)))))
}

// renewTokens renews every token due among secrets, each at most once per
// renewRetry; the Secret's update then restarts the node with it, as any
// changed credentials do.
func (n *managerNodes) renewTokens(ctx context.Context, secrets []*corev1.Secret, tried map[string]time.Time) {
	now := time.Now()
	for _, s := range secrets {
		if !renewDue(s, now) || now.Sub(tried[s.Name]) < renewRetry {
			continue
		}
		tried[s.Name] = now
		if err := n.renewToken(ctx, s); err != nil {
			n.log.Error("renew credentials", "secret", n.namespace+"/"+s.Name, "err", err)
			continue
		}
		delete(tried, s.Name)
		n.log.Info("renewed credentials", "secret", n.namespace+"/"+s.Name)
	}
}

// renewToken mints a new token for the Secret's ServiceAccount with the
// token it holds, for the same lifetime, and writes it to the Secret. A
// remote that refuses (the token revoked or expired, the role removed) is
// recorded on the Secret, for atoll status.
func (n *managerNodes) renewToken(ctx context.Context, s *corev1.Secret) error {
	issued, expires, _ := tokenTimes(s)
	data := s.Data[reconcile.DefaultSecretKey]
	if err := selfContained(data, n.allowExec); err != nil {
		return err
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	account := s.Annotations[annotationTokenAccount]
	tok, err := deploy.MintToken(ctx, cs, account, expires.Sub(issued))
	if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
		return n.updateSecret(ctx, s, func(c *corev1.Secret) {
			c.Annotations[annotationTokenRejected] = time.Now().UTC().Format(time.RFC3339) + ": " + err.Error()
		}, err)
	}
	if err != nil {
		return err
	}
	kctx := kc.Contexts[kc.CurrentContext]
	if kctx == nil || kc.AuthInfos[kctx.AuthInfo] == nil {
		return fmt.Errorf("kubeconfig has no user in its current context %q", kc.CurrentContext)
	}
	kc.AuthInfos[kctx.AuthInfo].Token = tok.Status.Token
	out, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	return n.updateSecret(ctx, s, func(c *corev1.Secret) {
		c.Data[reconcile.DefaultSecretKey] = out
		setTokenAnnotations(c, account, time.Now(), tok.Status.ExpirationTimestamp.Time)
	}, nil)
}

// updateSecret applies change to a copy of s and writes it; result is
// returned once the write succeeded.
func (n *managerNodes) updateSecret(ctx context.Context, s *corev1.Secret, change func(*corev1.Secret), result error) error {
	c := s.DeepCopy()
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	change(c)
	cctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if _, err := n.master.CoreV1().Secrets(n.namespace).Update(cctx, c, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update secret %s/%s: %w", n.namespace, s.Name, err)
	}
	return result
}
