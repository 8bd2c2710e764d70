package commitstatus

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWritersRequestShape(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name       string
		newWriter  func(APIConfig) (Reporter, error)
		repo       string
		status     Status
		wantPath   string // escaped
		wantHeader map[string]string
		wantBody   map[string]any
	}{
		{
			name:      "github",
			newWriter: func(c APIConfig) (Reporter, error) { return NewGitHub(c) },
			repo:      "atoll-dev/fleet",
			status:    Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess, Description: "3 nodes ready", TargetURL: "https://atoll.example/r/1"},
			wantPath:  "/repos/atoll-dev/fleet/statuses/" + sha1,
			wantHeader: map[string]string{
				"Authorization":        "Bearer " + secret,
				"Accept":               "application/vnd.github+json",
				"X-Github-Api-Version": GitHubAPIVersion,
				"Content-Type":         "application/json",
			},
			wantBody: map[string]any{"state": "success", "context": "atoll/sync", "description": "3 nodes ready", "target_url": "https://atoll.example/r/1"},
		},
		{
			name:      "github truncates description to 140",
			newWriter: func(c APIConfig) (Reporter, error) { return NewGitHub(c) },
			repo:      "atoll-dev/fleet",
			status:    Status{Revision: sha1, Context: "atoll/sync", State: StateFailure, Description: long},
			wantPath:  "/repos/atoll-dev/fleet/statuses/" + sha1,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + secret,
			},
			wantBody: map[string]any{"state": "failure", "context": "atoll/sync", "description": strings.Repeat("x", 139) + "…"},
		},
		{
			name:      "gitlab maps pending to running",
			newWriter: func(c APIConfig) (Reporter, error) { return NewGitLab(c) },
			repo:      "infra/clusters/fleet",
			status:    Status{Revision: sha1, Context: "atoll/sync", State: StatePending, Description: "applying", TargetURL: "https://atoll.example/r/1"},
			wantPath:  "/projects/infra%2Fclusters%2Ffleet/statuses/" + sha1,
			wantHeader: map[string]string{
				"Private-Token": secret,
				"Content-Type":  "application/json",
			},
			wantBody: map[string]any{"state": "running", "name": "atoll/sync", "description": "applying", "target_url": "https://atoll.example/r/1"},
		},
		{
			name:       "gitlab maps failure to failed and truncates to 255",
			newWriter:  func(c APIConfig) (Reporter, error) { return NewGitLab(c) },
			repo:       "infra/fleet",
			status:     Status{Revision: sha1, Context: "atoll/sync", State: StateFailure, Description: long},
			wantPath:   "/projects/infra%2Ffleet/statuses/" + sha1,
			wantHeader: map[string]string{"Private-Token": secret},
			wantBody:   map[string]any{"state": "failed", "name": "atoll/sync", "description": strings.Repeat("x", 254) + "…"},
		},
		{
			name:       "gitlab maps error to failed",
			newWriter:  func(c APIConfig) (Reporter, error) { return NewGitLab(c) },
			repo:       "infra/fleet",
			status:     Status{Revision: sha1, Context: "atoll/plan", State: StateError, Description: "cluster unreachable"},
			wantPath:   "/projects/infra%2Ffleet/statuses/" + sha1,
			wantHeader: map[string]string{"Private-Token": secret},
			wantBody:   map[string]any{"state": "failed", "name": "atoll/plan", "description": "cluster unreachable"},
		},
		{
			name:      "gitea",
			newWriter: func(c APIConfig) (Reporter, error) { return NewGitea(c) },
			repo:      "ops/fleet",
			status:    Status{Revision: sha1, Context: "atoll/sync", State: StateError, Description: "boom"},
			wantPath:  "/repos/ops/fleet/statuses/" + sha1,
			wantHeader: map[string]string{
				"Authorization": "token " + secret,
				"Content-Type":  "application/json",
			},
			wantBody: map[string]any{"state": "error", "context": "atoll/sync", "description": "boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			w, err := tt.newWriter(APIConfig{BaseURL: api.srv.URL, Repository: tt.repo, Token: secret, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Report(context.Background(), tt.status); err != nil {
				t.Fatalf("Report: %v", err)
			}
			reqs := api.got()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost {
				t.Errorf("method = %s, want POST", r.Method)
			}
			if r.RawPath != tt.wantPath {
				t.Errorf("path = %s, want %s", r.RawPath, tt.wantPath)
			}
			for k, v := range tt.wantHeader {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if !reflect.DeepEqual(r.Body, tt.wantBody) {
				t.Errorf("body = %v, want %v", r.Body, tt.wantBody)
			}
		})
	}
}

func TestWritersErrorHandling(t *testing.T) {
	reset := strconv.FormatInt(time.Now().Add(90*time.Second).Unix(), 10)
	tests := []struct {
		name          string
		provider      string
		responses     []fakeResponse
		wantRetryable bool
		wantAfter     bool // a wait was derived from headers
		wantRequests  int
		wantErr       bool
	}{
		{
			name:     "github 403 without rate limit is terminal",
			provider: "github",
			responses: []fakeResponse{{code: 403, body: `{"message":"Resource not accessible by integration"}`,
				header: map[string]string{"X-RateLimit-Remaining": "4999"}}},
			wantErr: true, wantRequests: 1,
		},
		{
			name:     "github 403 primary rate limit waits for reset",
			provider: "github",
			responses: []fakeResponse{{code: 403, body: `{"message":"API rate limit exceeded"}`,
				header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}}},
			wantErr: true, wantRetryable: true, wantAfter: true, wantRequests: 1,
		},
		{
			name:     "github 429 secondary rate limit honours Retry-After",
			provider: "github",
			responses: []fakeResponse{{code: 429, body: `{"message":"You have exceeded a secondary rate limit"}`,
				header: map[string]string{"Retry-After": "60"}}},
			wantErr: true, wantRetryable: true, wantAfter: true, wantRequests: 1,
		},
		{
			name:          "github 500 is retryable",
			provider:      "github",
			responses:     []fakeResponse{{code: 502, body: `bad gateway`}},
			wantErr:       true,
			wantRetryable: true, wantRequests: 1,
		},
		{
			name:         "github 422 is terminal",
			provider:     "github",
			responses:    []fakeResponse{{code: 422, body: `{"message":"No commit found for SHA"}`}},
			wantErr:      true,
			wantRequests: 1,
		},
		{
			name:     "gitlab 429 honours RateLimit-Reset",
			provider: "gitlab",
			responses: []fakeResponse{{code: 429, body: `{"message":"Retry later"}`,
				header: map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": reset}}},
			wantErr: true, wantRetryable: true, wantAfter: true, wantRequests: 1,
		},
		{
			name:         "gitlab 409 is retried until success",
			provider:     "gitlab",
			responses:    []fakeResponse{{code: 409, body: `{"message":"409 Conflict"}`}, {code: 409}, {code: 201, body: `{"id":1}`}},
			wantRequests: 3,
		},
		{
			name:          "gitlab 409 forever is retryable after the attempts",
			provider:      "gitlab",
			responses:     []fakeResponse{{code: 409, body: `{"message":"409 Conflict"}`}},
			wantErr:       true,
			wantRetryable: true, wantRequests: gitlabConflictAttempts,
		},
		{
			name:         "gitlab same-state transition counts as delivered",
			provider:     "gitlab",
			responses:    []fakeResponse{{code: 400, body: `{"message":"Cannot transition status via :enqueue from :pending (Reasons: )"}`}},
			wantRequests: 1,
		},
		{
			name:         "gitlab 403 is terminal",
			provider:     "gitlab",
			responses:    []fakeResponse{{code: 403, body: `{"message":"403 Forbidden"}`}},
			wantErr:      true,
			wantRequests: 1,
		},
		{
			name:         "gitea 401 is terminal",
			provider:     "gitea",
			responses:    []fakeResponse{{code: 401, body: `{"message":"token is required"}`}},
			wantErr:      true,
			wantRequests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, tt.responses...)
			cfg := APIConfig{BaseURL: api.srv.URL, Repository: "o/r", Token: secret, Logger: testLogger(t)}
			var w Reporter
			var err error
			switch tt.provider {
			case "github":
				w, err = NewGitHub(cfg)
			case "gitea":
				w, err = NewGitea(cfg)
			case "gitlab":
				var gl *GitLab
				gl, err = NewGitLab(cfg)
				if gl != nil {
					gl.sleep = func(context.Context, time.Duration) error { return nil }
				}
				w = gl
			}
			if err != nil {
				t.Fatal(err)
			}
			err = w.Report(context.Background(), Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if n := len(api.got()); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			if err == nil {
				return
			}
			if IsRetryable(err) != tt.wantRetryable || IsTerminal(err) == tt.wantRetryable {
				t.Errorf("IsRetryable = %v, IsTerminal = %v, want retryable %v: %v", IsRetryable(err), IsTerminal(err), tt.wantRetryable, err)
			}
			after, ok := RetryAfter(err)
			if ok != tt.wantAfter || (ok && (after <= 0 || after > 2*time.Minute)) {
				t.Errorf("RetryAfter = %v, %v; want a wait: %v", after, ok, tt.wantAfter)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Errorf("error %v does not carry an *APIError", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// A server that echoes the request (headers included) into its error must
// not get the token into our error messages or logs.
func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	for _, provider := range []string{"github", "gitlab", "gitea"} {
		t.Run(provider, func(t *testing.T) {
			srv := newFakeAPI(t)
			srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"message":"denied for ` + r.Header.Get("Authorization") + r.Header.Get("Private-Token") + `"}`))
			})
			var logs strings.Builder
			cfg := APIConfig{BaseURL: srv.srv.URL, Repository: "o/r", Token: secret, Logger: newBufLogger(&logs)}
			w, _, err := New(Config{RepoURL: "https://example.com/o/r.git", Provider: Provider(provider), StatusURL: cfg.BaseURL, Token: secret, Logger: cfg.Logger})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Report(context.Background(), Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess})
			if err == nil {
				t.Fatal("want an error from a 403")
			}
			if !strings.Contains(err.Error(), "denied for") {
				t.Errorf("error lost the server's message: %v", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the token: %v", err)
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs leak the token: %s", logs.String())
			}
			if !strings.Contains(logs.String(), "[REDACTED]") {
				t.Errorf("the echoed token was not logged redacted; logs: %s", logs.String())
			}
		})
	}
}

func TestRateLimitHoldsOffFurtherCalls(t *testing.T) {
	reset := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	api := newFakeAPI(t, fakeResponse{code: 201, body: `{}`, header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}})
	w, err := NewGitHub(APIConfig{BaseURL: api.srv.URL, Repository: "o/r", Token: secret, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Report(context.Background(), Status{Revision: sha1, Context: "c", State: StatePending}); err != nil {
		t.Fatalf("first report: %v", err)
	}
	err = w.Report(context.Background(), Status{Revision: sha1, Context: "c", State: StateSuccess})
	if !IsRetryable(err) {
		t.Fatalf("second report while the quota is used up: err = %v, want retryable", err)
	}
	if after, ok := RetryAfter(err); !ok || after < 30*time.Minute {
		t.Errorf("RetryAfter = %v, %v; want about an hour", after, ok)
	}
	if n := len(api.got()); n != 1 {
		t.Errorf("requests = %d, want 1 (the second must not be sent)", n)
	}
}

func TestInvalidStatusIsTerminal(t *testing.T) {
	api := newFakeAPI(t)
	w, err := NewGitea(APIConfig{BaseURL: api.srv.URL, Repository: "o/r", Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    Status
	}{
		{"short sha", Status{Revision: "abc123", Context: "c", State: StateSuccess}},
		{"no context", Status{Revision: sha1, State: StateSuccess}},
		{"unknown state", Status{Revision: sha1, Context: "c", State: "warning"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := w.Report(context.Background(), tt.s); !IsTerminal(err) {
				t.Errorf("err = %v, want terminal", err)
			}
		})
	}
	if n := len(api.got()); n != 0 {
		t.Errorf("invalid statuses reached the server: %d requests", n)
	}
}
