package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// DefaultWebhookMaxBody bounds a webhook request body.
const DefaultWebhookMaxBody int64 = 1 << 20

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// Secret shared with the git host: the HMAC key for GitHub and Gitea
	// (X-Hub-Signature-256, X-Gitea-Signature) and the token for GitLab
	// (X-Gitlab-Token). Required.
	Secret []byte
	// Trigger is called for every authenticated delivery, e.g.
	// GitSource.Trigger. It must not block. Required.
	Trigger func()
	// MaxBody bounds the request body; default DefaultWebhookMaxBody.
	MaxBody int64
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Webhook is an http.Handler for push notifications from GitHub, Gitea and
// GitLab. A POST whose signature or token checks out gets 202 and calls
// Trigger (a "ping" gets 200 and triggers nothing); a missing or wrong
// signature gets 401 and triggers nothing. The body is not interpreted
// beyond authentication: the source asks the remote for the ref's head,
// which is the only thing trusted.
type Webhook struct {
	cfg WebhookConfig
	log *slog.Logger
}

var _ http.Handler = (*Webhook)(nil)

// NewWebhook validates cfg.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if len(cfg.Secret) == 0 {
		return nil, invalidConfig("webhook Secret is required")
	}
	if cfg.Trigger == nil {
		return nil, invalidConfig("webhook Trigger is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultWebhookMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Webhook{cfg: cfg, log: cfg.Logger.With("component", "webhook")}, nil
}

// ServeHTTP implements http.Handler.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	provider, ok := h.authenticate(r.Header, body)
	if !ok {
		// Never log the presented signature or token.
		h.log.Warn("webhook refused: missing or bad signature", "remote", r.RemoteAddr, "provider", provider)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	event := firstHeader(r.Header, "X-GitHub-Event", "X-Gitea-Event", "X-Gitlab-Event")
	if strings.EqualFold(event, "ping") {
		h.log.Debug("webhook ping", "provider", provider)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.log.Info("webhook accepted", "provider", provider, "event", event)
	h.cfg.Trigger()
	w.WriteHeader(http.StatusAccepted)
}

// authenticate checks, in order, X-Hub-Signature-256 (GitHub, Gitea),
// X-Gitea-Signature and X-Gitlab-Token. The first header present decides.
func (h *Webhook) authenticate(hdr http.Header, body []byte) (provider string, ok bool) {
	mac := hmac.New(sha256.New, h.cfg.Secret)
	mac.Write(body)
	want := mac.Sum(nil)
	if sig := hdr.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		return "github", err == nil && strings.HasPrefix(sig, "sha256=") && hmac.Equal(got, want)
	}
	if sig := hdr.Get("X-Gitea-Signature"); sig != "" {
		got, err := hex.DecodeString(sig)
		return "gitea", err == nil && hmac.Equal(got, want)
	}
	if tok := hdr.Get("X-Gitlab-Token"); tok != "" {
		return "gitlab", subtle.ConstantTimeCompare([]byte(tok), h.cfg.Secret) == 1
	}
	return "none", false
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
