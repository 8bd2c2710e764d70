package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
)

var (
	gpuTaint      = corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	providerTaint = corev1.Taint{Key: "virtual-kubelet.io/provider", Value: "atoll", Effect: corev1.TaintEffectNoSchedule}
	gpuRule       = Rule{Policy: "gpu", NamespaceSelector: "team=ml", Tolerations: []corev1.Toleration{TolerationFor(gpuTaint), TolerationFor(providerTaint)}}
)

func TestRuleSet(t *testing.T) {
	s := NewRuleSet()
	s.Set("b", []Rule{gpuRule})
	s.Set("a", []Rule{gpuRule, {Policy: "all"}})
	<-s.Changed()
	got := s.Rules()
	if len(got) != 2 || got[0].Policy != "all" || got[1].Policy != "gpu" {
		t.Fatalf("rules = %+v, want all, gpu", got)
	}
	s.Set("a", nil)
	s.Set("b", nil)
	select {
	case <-s.Changed():
	default:
		t.Fatal("no change signalled")
	}
	if got := s.Rules(); len(got) != 0 {
		t.Errorf("rules = %+v, want none", got)
	}
}

func TestConfigurerApply(t *testing.T) {
	client := fake.NewClientset()
	c := &Configurer{Client: client, Name: "atoll", CABundle: []byte("CA"), Service: "atoll-admission", Namespace: "atoll-system", Port: 443}
	ctx := context.Background()
	if err := c.Apply(ctx, []Rule{gpuRule, {Policy: "everywhere", Tolerations: []corev1.Toleration{TolerationFor(providerTaint)}}}); err != nil {
		t.Fatal(err)
	}
	got, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "atoll", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Webhooks) != 2 {
		t.Fatalf("%d webhooks, want 2", len(got.Webhooks))
	}
	w := got.Webhooks[0]
	if w.Name != "gpu.tolerate.atoll.dev" || *w.ClientConfig.Service.Path != "/tolerate/gpu" || string(w.ClientConfig.CABundle) != "CA" ||
		*w.FailurePolicy != "Ignore" || w.NamespaceSelector.MatchLabels["team"] != "ml" || w.Rules[0].Resources[0] != "pods" {
		t.Errorf("webhook = %+v", w)
	}
	if sel := got.Webhooks[1].NamespaceSelector; len(sel.MatchLabels)+len(sel.MatchExpressions) != 0 {
		t.Errorf("a rule without selector selects %v, want every namespace", sel)
	}
	m, err := decodeTolerations(got.Annotations[AnnotationTolerations])
	if err != nil || len(m["gpu"]) != 2 || m["gpu"][0].Key != "gpu" {
		t.Errorf("tolerations annotation = %v (%v)", m, err)
	}
	// Unchanged: nothing is written. Rules gone: no webhook left.
	client.ClearActions()
	if err := c.Apply(ctx, []Rule{gpuRule, {Policy: "everywhere", Tolerations: []corev1.Toleration{TolerationFor(providerTaint)}}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("unchanged configuration written: %v", a)
		}
	}
	if err := c.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "atoll", metav1.GetOptions{})
	if len(got.Webhooks) != 0 {
		t.Errorf("webhooks left: %v", got.Webhooks)
	}
	// A URL instead of a Service; a bad selector names the policy.
	c.URL = "https://127.0.0.1:8443"
	if err := c.Apply(ctx, []Rule{gpuRule}); err != nil {
		t.Fatal(err)
	}
	got, _ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "atoll", metav1.GetOptions{})
	if u := got.Webhooks[0].ClientConfig.URL; u == nil || *u != "https://127.0.0.1:8443/tolerate/gpu" || got.Webhooks[0].ClientConfig.Service != nil {
		t.Errorf("client config = %+v", got.Webhooks[0].ClientConfig)
	}
	if err := c.Apply(ctx, []Rule{{Policy: "bad", NamespaceSelector: "team in (("}}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("policy bad")) {
		t.Errorf("bad selector: err = %v", err)
	}
}

// review posts an AdmissionReview of a pod CREATE to path and returns the
// response.
func review(t *testing.T, h http.Handler, path string, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, _ := json.Marshal(pod)
	body, _ := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "req-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Create,
			Namespace: pod.Namespace, Object: runtime.RawExtension{Raw: raw},
		},
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s = %d %s", path, rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("response %s: %v", rec.Body, err)
	}
	if out.Response.UID != "req-1" || !out.Response.Allowed {
		t.Fatalf("response = %+v, want allowed for req-1", out.Response)
	}
	return out.Response
}

// patched applies a response's patch to pod.
func patched(t *testing.T, pod *corev1.Pod, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	if resp.Patch == nil {
		return pod
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(pod)
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", resp.Patch, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func TestHandler(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := NewHandler(client, "atoll", slog.New(slog.NewTextHandler(io.Discard, nil)))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ml"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}

	// Before the configuration is read: admitted unchanged, with a warning.
	if r := review(t, h, "/tolerate/gpu", pod); r.Patch != nil || len(r.Warnings) == 0 {
		t.Errorf("before sync: patch %s, warnings %v", r.Patch, r.Warnings)
	}
	c := &Configurer{Client: client, Name: "atoll", URL: "https://127.0.0.1:1"}
	if err := c.Apply(ctx, []Rule{gpuRule}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.tolerations("gpu"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("configuration never read")
		}
		time.Sleep(10 * time.Millisecond)
	}

	tests := []struct {
		name string
		have []corev1.Toleration
		want int // tolerations after
	}{
		{name: "none: both added", want: 2},
		{name: "one of its own kept, both added", have: []corev1.Toleration{{Key: "other", Operator: corev1.TolerationOpExists}}, want: 3},
		{name: "already tolerated by Exists: only the other added", have: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}, want: 2},
		{name: "both there: no patch", have: gpuRule.Tolerations, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pod.DeepCopy()
			p.Spec.Tolerations = tt.have
			resp := review(t, h, "/tolerate/gpu", p)
			got := patched(t, p, resp)
			if len(got.Spec.Tolerations) != tt.want {
				t.Fatalf("tolerations = %v, want %d", got.Spec.Tolerations, tt.want)
			}
			for _, taint := range []corev1.Taint{gpuTaint, providerTaint} {
				if !hasTolerationOf(got.Spec.Tolerations, taint) {
					t.Errorf("%s not tolerated: %v", taint.Key, got.Spec.Tolerations)
				}
			}
			if len(tt.have) == tt.want && resp.Patch != nil {
				t.Errorf("patch %s for a pod that lacks nothing", resp.Patch)
			}
		})
	}
	// A policy the configuration does not know: admitted, unchanged.
	if r := review(t, h, "/tolerate/unknown", pod); r.Patch != nil {
		t.Errorf("unknown policy patched: %s", r.Patch)
	}
	for _, path := range []string{"/tolerate/", "/other", "/tolerate/a/b"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", path, rec.Code)
		}
	}
}

func hasTolerationOf(list []corev1.Toleration, t corev1.Taint) bool {
	for _, tol := range list {
		if tol.ToleratesTaint(klog.Background(), &t, false) {
			return true
		}
	}
	return false
}

func TestEnsureServingCert(t *testing.T) {
	client := fake.NewClientset()
	ctx := context.Background()
	hosts := []string{"atoll-admission.atoll-system.svc", "127.0.0.1"}
	first, err := EnsureServingCert(ctx, client, "atoll-system", "tls", hosts, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A second replica reads the same certificate.
	second, err := EnsureServingCert(ctx, client, "atoll-system", "tls", hosts, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificate.Certificate[0], second.Certificate.Certificate[0]) || !bytes.Equal(first.CABundle, second.CABundle) {
		t.Error("a second call made another certificate")
	}
	// The CA bundle verifies the certificate for each host.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(first.CABundle) {
		t.Fatal("CA bundle is not PEM")
	}
	leaf, _ := x509.ParseCertificate(first.Certificate.Certificate[0])
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	// Another host: the certificate is replaced and covers it.
	third, err := EnsureServingCert(ctx, client, "atoll-system", "tls", []string{"atoll.example"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(third.Certificate.Certificate[0])
	if err := leaf.VerifyHostname("atoll.example"); err != nil {
		t.Error(err)
	}
	// And it serves TLS a client trusting the bundle accepts.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{first.Certificate}}
	srv.StartTLS()
	defer srv.Close()
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Get(srv.URL)
	if err != nil {
		t.Fatalf("TLS with the bundle: %v", err)
	}
	_ = resp.Body.Close()
}
