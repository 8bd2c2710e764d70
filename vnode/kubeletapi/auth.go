package kubeletapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
)

// guard authenticates and authorizes every request the way a kubelet does
// with webhook authentication and authorization: client certificates signed
// by the client CA, or bearer tokens checked with a TokenReview against the
// master; then a SubjectAccessReview for verb on nodes/<subresource> of the
// virtual node the request is about. Anonymous requests are refused.
// Answers are cached as a kubelet caches them by default.
type guard struct {
	master kubernetes.Interface
	ca     *clientCA // nil: client certificates are not accepted

	tokens    *cache.LRUExpireCache // sha256 of a token -> *user (nil: rejected)
	decisions *cache.LRUExpireCache // SubjectAccessReview spec -> decision
	ttl       guardTTLs
}

// guardTTLs are how long answers are cached: the kubelet's defaults for
// tokens (--authentication-token-webhook-cache-ttl) and decisions
// (--authorization-webhook-cache-authorized-ttl, -unauthorized-ttl).
type guardTTLs struct {
	token, tokenRejected, allowed, denied time.Duration
}

var defaultGuardTTLs = guardTTLs{token: 2 * time.Minute, tokenRejected: 10 * time.Second, allowed: 5 * time.Minute, denied: 30 * time.Second}

// guardCacheSize bounds each cache: many distinct tokens cannot grow memory.
const guardCacheSize = 4096

// webhookRetryBackoff is how TokenReviews and SubjectAccessReviews are
// retried on errors that may pass: the kube-apiserver's default for its own
// authentication and authorization webhooks.
var webhookRetryBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// user is who a request authenticated as.
type user struct {
	Name   string                                `json:"name"`
	UID    string                                `json:"uid,omitempty"`
	Groups []string                              `json:"groups,omitempty"`
	Extra  map[string]authorizationv1.ExtraValue `json:"extra,omitempty"`
}

// decision is a cached SubjectAccessReview answer.
type decision struct {
	allowed bool
	reason  string
}

func newGuard(master kubernetes.Interface, ca *clientCA) *guard {
	return &guard{
		master:    master,
		ca:        ca,
		tokens:    cache.NewLRUExpireCache(guardCacheSize),
		decisions: cache.NewLRUExpireCache(guardCacheSize),
		ttl:       defaultGuardTTLs,
	}
}

// check returns 0 when the request may proceed, else the HTTP status to
// answer with and why. node is the virtual node the request is about ("" for
// requests about every node of this process).
func (g *guard) check(ctx context.Context, r *http.Request, node string) (int, string) {
	u, err := g.authenticate(ctx, r)
	if err != nil || u == nil {
		// As a kubelet answers when the master cannot be asked, too.
		return http.StatusUnauthorized, "Unauthorized"
	}
	attrs := &authorizationv1.ResourceAttributes{
		Verb:        verb(r.Method),
		Version:     "v1",
		Resource:    "nodes",
		Subresource: subresource(r.URL.Path),
		Name:        node,
	}
	d, err := g.authorize(ctx, u, attrs)
	if err != nil {
		return http.StatusInternalServerError, "authorization failed"
	}
	if !d.allowed {
		msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", u.Name, attrs.Verb, attrs.Subresource)
		if d.reason != "" {
			msg += ": " + d.reason
		}
		return http.StatusForbidden, msg
	}
	return 0, ""
}

// authenticate returns who sent r: a client certificate the client CA
// signed, else a bearer token the master vouches for. Nil: neither (or a
// rejected one). An error means the master could not be asked.
func (g *guard) authenticate(ctx context.Context, r *http.Request) (*user, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && g.ca != nil {
		if u := g.ca.user(r.TLS.PeerCertificates); u != nil {
			return u, nil
		}
	}
	token, ok := bearerToken(r)
	if !ok {
		return nil, nil
	}
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(token)))
	if v, ok := g.tokens.Get(key); ok {
		return v.(*user), nil
	}
	var status authenticationv1.TokenReviewStatus
	err := webhookCall(ctx, func(ctx context.Context) error {
		tr, err := g.master.AuthenticationV1().TokenReviews().Create(ctx,
			&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err == nil {
			status = tr.Status
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !status.Authenticated || status.User.Username == "" {
		g.tokens.Add(key, (*user)(nil), g.ttl.tokenRejected)
		return nil, nil
	}
	u := &user{Name: status.User.Username, UID: status.User.UID, Groups: status.User.Groups}
	for k, v := range status.User.Extra {
		if u.Extra == nil {
			u.Extra = map[string]authorizationv1.ExtraValue{}
		}
		u.Extra[k] = authorizationv1.ExtraValue(v)
	}
	g.tokens.Add(key, u, g.ttl.token)
	return u, nil
}

// authorize asks the master whether u may do attrs.
func (g *guard) authorize(ctx context.Context, u *user, attrs *authorizationv1.ResourceAttributes) (decision, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: attrs, User: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra,
	}
	raw, err := json.Marshal(spec) // map keys sorted: equal specs, equal keys
	if err != nil {
		return decision{}, err
	}
	key := string(raw)
	if v, ok := g.decisions.Get(key); ok {
		return v.(decision), nil
	}
	var status authorizationv1.SubjectAccessReviewStatus
	err = webhookCall(ctx, func(ctx context.Context) error {
		sar, err := g.master.AuthorizationV1().SubjectAccessReviews().Create(ctx,
			&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
		if err == nil {
			status = sar.Status
		}
		return err
	})
	if err != nil {
		return decision{}, err
	}
	d := decision{allowed: status.Allowed && !status.Denied, reason: status.Reason}
	ttl := g.ttl.denied
	if d.allowed {
		ttl = g.ttl.allowed
	}
	g.decisions.Add(key, d, ttl)
	return d, nil
}

// webhookCall runs one review, retried with webhookRetryBackoff while the
// master answers with a server error or not at all.
func webhookCall(ctx context.Context, call func(context.Context) error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, webhookRetryBackoff, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		last = call(cctx)
		switch {
		case last == nil:
			return true, nil
		case retriable(last):
			return false, nil
		}
		return false, last
	})
	if err != nil && last != nil && !errors.Is(err, last) {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}

// retriable reports whether a review may succeed if tried again: the master
// did not answer, or answered with a server error or "too many requests".
func retriable(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code := st.Status().Code
		return code >= 500 || code == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// clientCA is the CA whose client certificates authenticate, from PEM or
// from a file that is read again when it changes (a rotated CA applies
// without a restart; a file that does not parse keeps the last good one).
type clientCA struct {
	file string

	mu      sync.Mutex
	pool    *x509.CertPool
	modTime time.Time
	size    int64
}

// newClientCA loads a CA bundle from file, or from pem when file is "".
func newClientCA(file string, pem []byte) (*clientCA, error) {
	c := &clientCA{file: file}
	if file == "" {
		pool, err := certutil.NewPoolFromBytes(pem)
		if err != nil {
			return nil, err
		}
		c.pool = pool
		return c, nil
	}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the file if it changed since it was last read. The caller
// holds c.mu, or owns c.
func (c *clientCA) reload() error {
	fi, err := os.Stat(c.file)
	if err != nil {
		return err
	}
	if c.pool != nil && fi.ModTime().Equal(c.modTime) && fi.Size() == c.size {
		return nil
	}
	data, err := os.ReadFile(c.file)
	if err != nil {
		return err
	}
	pool, err := certutil.NewPoolFromBytes(bytes.TrimSpace(data))
	if err != nil {
		return fmt.Errorf("%s: %w", c.file, err)
	}
	c.pool, c.modTime, c.size = pool, fi.ModTime(), fi.Size()
	return nil
}

// current returns the CA pool, read again from the file if it changed.
func (c *clientCA) current() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != "" {
		_ = c.reload() // on error the last good pool stays
	}
	return c.pool
}

// user returns who a client certificate chain names, if the CA signed it for
// client authentication: the common name is the user, the organizations are
// its groups (as the kube-apiserver maps them).
func (c *clientCA) user(chain []*x509.Certificate) *user {
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, ic := range chain[1:] {
		intermediates.AddCert(ic)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         c.current(),
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil || leaf.Subject.CommonName == "" {
		return nil
	}
	return &user{Name: leaf.Subject.CommonName, Groups: leaf.Subject.Organization}
}

// verb maps an HTTP method to an authorization verb, as the kubelet does.
func verb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	default:
		return "get"
	}
}

// subresource maps a kubelet path to the nodes subresource that guards it,
// as the kubelet does: stats, metrics and log have their own; everything
// else, container logs, exec, attach and port-forward included, is proxy.
func subresource(path string) string {
	for _, s := range []struct{ prefix, sub string }{
		{"/stats", "stats"},
		{"/metrics", "metrics"},
		{"/logs", "log"},
	} {
		if path == s.prefix || strings.HasPrefix(path, s.prefix+"/") {
			return s.sub
		}
	}
	return "proxy"
}
