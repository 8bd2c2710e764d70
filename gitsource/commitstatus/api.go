package commitstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds each API call.
const DefaultTimeout = 30 * time.Second

// APIConfig configures the GitHub, GitLab and Gitea writers. BaseURL,
// Repository and Token are required.
type APIConfig struct {
	// BaseURL of the REST API: https://api.github.com (GitHub Enterprise:
	// https://HOST/api/v3), https://gitlab.com/api/v4,
	// https://gitea.example.com/api/v1.
	BaseURL string
	// Repository is "owner/name" for GitHub and Gitea, the full project
	// path ("group/subgroup/project") for GitLab.
	Repository string
	// Token authenticates the writer. It is never logged and never part of
	// an error.
	Token string
	// HTTPClient; default a client with the system roots and proxy settings.
	HTTPClient *http.Client
	// Timeout of each call; default DefaultTimeout.
	Timeout time.Duration
	// UserAgent; default "atoll".
	UserAgent string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// apiClient posts JSON to one provider and turns its answers, including
// rate-limit headers, into this package's errors.
type apiClient struct {
	provider string
	base     string // without trailing slash
	repo     string
	token    string
	client   *http.Client
	timeout  time.Duration
	agent    string
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	notBefore time.Time // rate limited until then
}

func newAPIClient(provider string, cfg APIConfig) (*apiClient, error) {
	if cfg.BaseURL == "" {
		return nil, invalidConfig("%s: BaseURL is required", provider)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, invalidConfig("%s: BaseURL %q is not an http(s) URL", provider, cfg.BaseURL)
	}
	if u.User != nil {
		return nil, invalidConfig("%s: BaseURL must not carry credentials", provider)
	}
	repo := strings.Trim(cfg.Repository, "/")
	if repo == "" || !strings.Contains(repo, "/") {
		return nil, invalidConfig("%s: Repository %q: want owner/name", provider, cfg.Repository)
	}
	if cfg.Token == "" {
		return nil, invalidConfig("%s: Token is required", provider)
	}
	c := &apiClient{
		provider: provider,
		base:     strings.TrimRight(u.String(), "/"),
		repo:     repo,
		token:    cfg.Token,
		client:   cfg.HTTPClient,
		timeout:  cfg.Timeout,
		agent:    cfg.UserAgent,
		log:      cfg.Logger,
		now:      time.Now,
	}
	if c.client == nil {
		c.client = &http.Client{Transport: http.DefaultTransport}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.agent == "" {
		c.agent = "atoll"
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("provider", provider, "repository", repo)
	return c, nil
}

// ownerName splits "owner/name" (GitHub, Gitea) into escaped path segments.
func (c *apiClient) ownerName() (string, error) {
	owner, name, ok := strings.Cut(c.repo, "/")
	if !ok || strings.Contains(name, "/") {
		return "", invalidConfig("%s: Repository %q: want owner/name", c.provider, c.repo)
	}
	return url.PathEscape(owner) + "/" + url.PathEscape(name), nil
}

// post sends body as JSON to base+path with hdr. A 2xx answer is success;
// everything else is an *APIError wrapped as retryable or terminal.
func (c *apiClient) post(ctx context.Context, path string, hdr http.Header, body any) error {
	if wait := c.pause(); wait > 0 {
		return retryable(fmt.Errorf("%s rate limit: next call allowed in %s", c.provider, wait.Round(time.Second)), wait)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return terminal(fmt.Errorf("encode status: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return terminal(fmt.Errorf("build request: %s", c.scrub(err.Error())))
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.client.Do(req)
	if err != nil {
		// Transport errors quote the URL, never headers; scrub anyway.
		return retryable(fmt.Errorf("post %s: %s", c.provider, c.scrub(err.Error())), 0)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	wait, limited := c.rateLimit(resp)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	apiErr := &APIError{Provider: c.provider, StatusCode: resp.StatusCode, Message: c.scrub(errorMessage(raw))}
	c.log.Debug("status call refused", "code", resp.StatusCode, "message", apiErr.Message)
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests,
		code == http.StatusForbidden && limited:
		return retryable(apiErr, wait)
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly, code >= 500:
		return retryable(apiErr, wait)
	default:
		return terminal(apiErr)
	}
}

// pause is how long the last rate-limit answer asked us to wait still.
func (c *apiClient) pause() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notBefore.Sub(c.now())
}

// rateLimit reads Retry-After and the rate-limit headers (GitHub:
// X-RateLimit-Remaining/-Reset; GitLab: RateLimit-Remaining/-Reset, both
// epoch seconds). It records how long to hold off further calls and
// reports that wait and whether the answer said we are limited.
func (c *apiClient) rateLimit(resp *http.Response) (time.Duration, bool) {
	now := c.now()
	var until time.Time
	limited := false
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		limited = true
		if s, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && s >= 0 {
			until = now.Add(time.Duration(s) * time.Second)
		} else if t, err := http.ParseTime(ra); err == nil {
			until = t
		}
	}
	for _, p := range []string{"X-RateLimit-", "RateLimit-"} {
		if strings.TrimSpace(resp.Header.Get(p+"Remaining")) != "0" {
			continue
		}
		limited = true
		if s, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get(p+"Reset")), 10, 64); err == nil {
			if t := time.Unix(s, 0); t.After(until) {
				until = t
			}
		}
	}
	if !limited {
		return 0, false
	}
	if !until.After(now) {
		// Limited without a usable time: hold off a little.
		until = now.Add(time.Second)
	}
	if max := now.Add(time.Hour); until.After(max) {
		until = max
	}
	c.mu.Lock()
	if until.After(c.notBefore) {
		c.notBefore = until
	}
	c.mu.Unlock()
	c.log.Info("provider rate limit reached; holding off", "until", until.UTC().Format(time.RFC3339))
	return until.Sub(now), true
}

// scrub removes the token from s: a server may echo request headers.
func (c *apiClient) scrub(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[REDACTED]")
}

// errorMessage extracts the message of a JSON error body, else the body's
// first 200 characters.
func errorMessage(raw []byte) string {
	var m struct {
		Message json.RawMessage `json:"message"`
		Error   string          `json:"error"`
	}
	if json.Unmarshal(raw, &m) == nil {
		var s string
		switch {
		case len(m.Message) > 0 && json.Unmarshal(m.Message, &s) == nil:
			return truncate(s, 200)
		case len(m.Message) > 0:
			return truncate(string(m.Message), 200) // GitLab: {"message": {"field": [...]}}
		case m.Error != "":
			return truncate(m.Error, 200)
		}
	}
	return truncate(strings.TrimSpace(string(raw)), 200)
}

// wrap adds which status failed to err, keeping its class.
func wrap(s Status, provider string, err error) error {
	if err == nil {
		return nil
	}
	msg := fmt.Errorf("post %s status %s=%s for %s: %w", provider, s.Context, s.State, short(s.Revision), err)
	var r *RetryableError
	if errors.As(err, &r) {
		return &RetryableError{After: r.After, Err: msg}
	}
	var t *TerminalError
	if errors.As(err, &t) {
		return &TerminalError{Err: msg}
	}
	return msg
}
