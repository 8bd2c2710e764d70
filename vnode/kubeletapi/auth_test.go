package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/atoll-dev/atoll/test/testpki"
)

// testCA is a CA that signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	cert, key := testpki.Issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
}

// client signs a certificate for cn in groups with the given extended key usage.
func (ca *testCA) client(t *testing.T, cn string, groups []string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	cert, _ := testpki.Issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: groups},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}, ca.cert, ca.key)
	return cert
}

// reviewer is a fake master answering TokenReviews and SubjectAccessReviews.
type reviewer struct {
	client       *fake.Clientset
	tokenReviews atomic.Int32
	accessChecks atomic.Int32
	last         atomic.Pointer[authorizationv1.SubjectAccessReviewSpec]
}

// newReviewer vouches for token "good" (user alice in group devs) and lets
// alice, and system:masters, use nodes/proxy of node vn-1 only.
func newReviewer() *reviewer {
	r := &reviewer{client: fake.NewClientset()}
	r.client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r.tokenReviews.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if tr.Spec.Token == "good" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: "alice", UID: "u-1", Groups: []string{"devs"}, Extra: map[string]authenticationv1.ExtraValue{"scope": {"a"}},
			}}
		}
		return true, tr, nil
	})
	r.client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r.accessChecks.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		spec := sar.Spec
		r.last.Store(&spec)
		ra := spec.ResourceAttributes
		who := spec.User == "alice" || (len(spec.Groups) > 0 && spec.Groups[0] == "system:masters")
		if who && ra.Resource == "nodes" && ra.Subresource == "proxy" && ra.Name == "vn-1" {
			sar.Status.Allowed = true
		} else {
			sar.Status.Reason = "no RBAC rule allows it"
		}
		return true, sar, nil
	})
	return r
}

func request(path, token string, certs ...*x509.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if len(certs) > 0 {
		r.TLS = &tls.ConnectionState{PeerCertificates: certs}
	}
	return r
}

// TestGuardTokens: a token the master vouches for authenticates, its user
// is authorized per node and subresource, and both answers are cached.
func TestGuardTokens(t *testing.T) {
	rv := newReviewer()
	g := newGuard(rv.client, nil)
	ctx := context.Background()

	if code, _ := g.check(ctx, request("/containerLogs/ns/p/c", ""), "vn-1"); code != http.StatusUnauthorized {
		t.Errorf("no credentials = %d, want 401", code)
	}
	if code, _ := g.check(ctx, request("/containerLogs/ns/p/c", "bogus"), "vn-1"); code != http.StatusUnauthorized {
		t.Errorf("a token the master rejects = %d, want 401", code)
	}
	for range 3 {
		if code, msg := g.check(ctx, request("/containerLogs/ns/p/c", "good"), "vn-1"); code != 0 {
			t.Fatalf("alice on nodes/proxy of vn-1 = %d %q, want allowed", code, msg)
		}
	}
	spec := rv.last.Load()
	ra := spec.ResourceAttributes
	if spec.User != "alice" || spec.UID != "u-1" || len(spec.Groups) != 1 || spec.Groups[0] != "devs" || spec.Extra["scope"][0] != "a" ||
		ra.Verb != "get" || ra.Version != "v1" || ra.Resource != "nodes" || ra.Subresource != "proxy" || ra.Name != "vn-1" {
		t.Errorf("SubjectAccessReview = %+v %+v, want alice's identity and get nodes/proxy vn-1", spec, ra)
	}
	code, msg := g.check(ctx, request("/containerLogs/ns/p/c", "good"), "vn-2")
	if code != http.StatusForbidden || !strings.Contains(msg, "user=alice") || !strings.Contains(msg, "no RBAC rule allows it") {
		t.Errorf("alice on another node = %d %q, want 403 naming the user and the reason", code, msg)
	}
	if code, _ := g.check(ctx, request("/stats/summary", "good"), "vn-1"); code != http.StatusForbidden {
		t.Errorf("alice on nodes/stats = %d, want 403", code)
	}
	// Cached: one TokenReview per token, one review per distinct question.
	if n := rv.tokenReviews.Load(); n != 2 {
		t.Errorf("%d TokenReviews, want 2 (one for each token)", n)
	}
	if n := rv.accessChecks.Load(); n != 3 {
		t.Errorf("%d SubjectAccessReviews, want 3 (one for each node and subresource)", n)
	}

	// Past their time to live, answers are asked for again.
	short := newGuard(rv.client, nil)
	short.ttl = guardTTLs{token: time.Nanosecond, tokenRejected: time.Nanosecond, allowed: time.Nanosecond, denied: time.Nanosecond}
	tokens, checks := rv.tokenReviews.Load(), rv.accessChecks.Load()
	for range 2 {
		if code, _ := short.check(ctx, request("/containerLogs/ns/p/c", "good"), "vn-1"); code != 0 {
			t.Fatalf("alice = %d, want allowed", code)
		}
	}
	if n, m := rv.tokenReviews.Load()-tokens, rv.accessChecks.Load()-checks; n != 2 || m != 2 {
		t.Errorf("%d TokenReviews and %d SubjectAccessReviews for two requests past the time to live, want 2 and 2", n, m)
	}
}

// TestGuardCertificates: a client certificate the client CA signed for
// client authentication names the user (common name) and its groups
// (organizations); any other is not accepted.
func TestGuardCertificates(t *testing.T) {
	rv := newReviewer()
	ca, other := newTestCA(t, "master-ca"), newTestCA(t, "other-ca")
	c, err := newClientCA("", ca.pem)
	if err != nil {
		t.Fatal(err)
	}
	g := newGuard(rv.client, c)
	ctx := context.Background()
	apiserver := ca.client(t, "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth)
	if code, msg := g.check(ctx, request("/exec/ns/p/c", "", apiserver), "vn-1"); code != 0 {
		t.Fatalf("the master's kubelet client certificate = %d %q, want allowed", code, msg)
	}
	if spec := rv.last.Load(); spec.User != "kube-apiserver-kubelet-client" || len(spec.Groups) != 1 || spec.Groups[0] != "system:masters" {
		t.Errorf("SubjectAccessReview for %q in %v, want the certificate's CN and O", spec.User, spec.Groups)
	}
	for name, cert := range map[string]*x509.Certificate{
		"signed by another CA":  other.client(t, "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth),
		"for server auth only":  ca.client(t, "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageServerAuth),
		"without a common name": ca.client(t, "", []string{"system:masters"}, x509.ExtKeyUsageClientAuth),
	} {
		if code, _ := g.check(ctx, request("/exec/ns/p/c", "", cert), "vn-1"); code != http.StatusUnauthorized {
			t.Errorf("a certificate %s = %d, want 401", name, code)
		}
	}
	// Without a client CA no certificate is accepted.
	if code, _ := newGuard(rv.client, nil).check(ctx, request("/exec/ns/p/c", "", apiserver), "vn-1"); code != http.StatusUnauthorized {
		t.Errorf("a certificate without a client CA configured = %d, want 401", code)
	}
}

// TestClientCAFileReloaded: a CA file that changes applies without a
// restart; one that stops parsing keeps the last good CA.
func TestClientCAFileReloaded(t *testing.T) {
	first, second := newTestCA(t, "first"), newTestCA(t, "second")
	file := filepath.Join(t.TempDir(), "ca.crt")
	write := func(data []byte, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(file, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	write(first.pem, 2*time.Hour)
	c, err := newClientCA(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert := second.client(t, "u", nil, x509.ExtKeyUsageClientAuth)
	if c.user([]*x509.Certificate{cert}) != nil {
		t.Fatal("a certificate of a CA not in the file was accepted")
	}
	write(second.pem, time.Hour)
	if u := c.user([]*x509.Certificate{cert}); u == nil || u.Name != "u" {
		t.Fatalf("after the CA file changed: %+v, want user u", u)
	}
	write([]byte("not a certificate"), 0)
	if c.user([]*x509.Certificate{cert}) == nil {
		t.Error("a CA file that does not parse dropped the last good CA")
	}
	if _, err := newClientCA(filepath.Join(t.TempDir(), "missing.crt"), nil); err == nil {
		t.Error("a missing CA file must be an error at start")
	}
}

// TestGuardRetriesServerErrors: a review the master fails with a server
// error is tried again; one it refuses is not.
func TestGuardRetriesServerErrors(t *testing.T) {
	rv := newReviewer()
	var failures atomic.Int32
	rv.client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		switch {
		case tr.Spec.Token == "good" && failures.Add(1) <= 2:
			return true, nil, apierrors.NewInternalError(errFake)
		case tr.Spec.Token == "forbidden":
			failures.Add(1)
			return true, nil, apierrors.NewForbidden(authenticationv1.Resource("tokenreviews"), "", errFake)
		}
		return false, nil, nil
	})
	g := newGuard(rv.client, nil)
	ctx := context.Background()
	if code, msg := g.check(ctx, request("/containerLogs/ns/p/c", "good"), "vn-1"); code != 0 {
		t.Fatalf("after two server errors = %d %q, want allowed", code, msg)
	}
	failures.Store(0)
	if code, _ := g.check(ctx, request("/containerLogs/ns/p/c", "forbidden"), "vn-1"); code != http.StatusUnauthorized {
		t.Errorf("a review the master refuses = %d, want 401", code)
	}
	if n := failures.Load(); n != 1 {
		t.Errorf("a refused review was sent %d times, want once", n)
	}
}

var errFake = fakeError("injected")

type fakeError string

func (e fakeError) Error() string { return string(e) }
