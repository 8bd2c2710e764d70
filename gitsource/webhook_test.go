package gitsource

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-dev/atoll/test/gitserver"
)

func hubSignature(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhook(t *testing.T) {
	const secret, body = "hook-secret", `{"ref":"refs/heads/main"}`
	tests := []struct {
		name        string
		method      string
		headers     map[string]string
		body        string
		wantStatus  int
		wantTrigger bool
	}{
		{name: "GitHub good signature", headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + hubSignature(secret, body)}, wantStatus: 202, wantTrigger: true},
		{name: "Gitea good signature", headers: map[string]string{"X-Gitea-Event": "push", "X-Hub-Signature-256": "sha256=" + hubSignature(secret, body)}, wantStatus: 202, wantTrigger: true},
		{name: "Gitea legacy header", headers: map[string]string{"X-Gitea-Signature": hubSignature(secret, body)}, wantStatus: 202, wantTrigger: true},
		{name: "GitLab good token", headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, wantStatus: 202, wantTrigger: true},
		{name: "GitHub ping", headers: map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + hubSignature(secret, body)}, wantStatus: 200},
		{name: "GitHub bad signature", headers: map[string]string{"X-Hub-Signature-256": "sha256=" + hubSignature("other", body)}, wantStatus: 401},
		{name: "GitHub signature of another body", headers: map[string]string{"X-Hub-Signature-256": "sha256=" + hubSignature(secret, body)}, body: `{"ref":"x"}`, wantStatus: 401},
		{name: "GitHub signature without prefix", headers: map[string]string{"X-Hub-Signature-256": hubSignature(secret, body)}, wantStatus: 401},
		{name: "GitHub garbage signature", headers: map[string]string{"X-Hub-Signature-256": "sha256=zz"}, wantStatus: 401},
		{name: "GitLab bad token", headers: map[string]string{"X-Gitlab-Token": "nope"}, wantStatus: 401},
		{name: "no signature", headers: map[string]string{"X-GitHub-Event": "push"}, wantStatus: 401},
		{name: "GET", method: http.MethodGet, headers: map[string]string{"X-Gitlab-Token": secret}, wantStatus: 405},
		{name: "body too large", headers: map[string]string{"X-Gitlab-Token": secret}, body: strings.Repeat("x", 2048), wantStatus: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var triggered atomic.Int64
			h, err := NewWebhook(WebhookConfig{Secret: []byte(secret), Trigger: func() { triggered.Add(1) }, MaxBody: 1024, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			method, b := tt.method, tt.body
			if method == "" {
				method = http.MethodPost
			}
			if b == "" {
				b = body
			}
			req := httptest.NewRequest(method, "/hook", strings.NewReader(b))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := triggered.Load() == 1; got != tt.wantTrigger || triggered.Load() > 1 {
				t.Errorf("triggered %d times, want trigger %v", triggered.Load(), tt.wantTrigger)
			}
		})
	}
}

func TestWebhookConfig(t *testing.T) {
	if _, err := NewWebhook(WebhookConfig{Trigger: func() {}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no secret: %v", err)
	}
	if _, err := NewWebhook(WebhookConfig{Secret: []byte("s")}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no trigger: %v", err)
	}
}

// TestWebhookTriggersFetch wires a webhook to a GitSource over a real HTTP
// server: a signed delivery makes Changes fire long before the poll
// interval, and the following Fetch sees the pushed commit; an unsigned one
// fires nothing.
func TestWebhookTriggersFetch(t *testing.T) {
	f := gitserver.NewRepo(t)
	f.Commit(map[string]string{"a.yaml": "a\n"}, "one")
	f.Push("main")
	gitSrv := gitserver.Start(t, f.Root, gitserver.Options{})
	src := newHTTPSource(t, gitSrv, func(c *GitConfig) { c.Username, c.Password, c.PollInterval = "", "", time.Hour })
	hook, err := NewWebhook(WebhookConfig{Secret: []byte("s"), Trigger: src.Trigger, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-src.Ready()
	waitSignal(t, src.Changes(), "initial signal")
	if _, err := src.Fetch(fetchCtx(t)); err != nil {
		t.Fatal(err)
	}

	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, hookSrv.URL, strings.NewReader("{}"))
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
		}
		resp, err := hookSrv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(hubSignature("wrong", "{}")); code != 401 {
		t.Fatalf("bad signature: status %d", code)
	}
	select {
	case <-src.Changes():
		t.Fatal("a delivery with a bad signature triggered a fetch")
	default:
	}

	second := f.Commit(map[string]string{"a.yaml": "b\n"}, "two")
	f.Push("main")
	if code := post(hubSignature("s", "{}")); code != 202 {
		t.Fatalf("good signature: status %d", code)
	}
	waitSignal(t, src.Changes(), "webhook signal")
	snap, err := src.Fetch(fetchCtx(t))
	if err != nil || snap.Revision != second {
		t.Fatalf("Fetch after webhook = %s, %v; want %s", snap.Revision, err, second)
	}
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
