package commitstatus

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// gitlabDescriptionMax is GitLab's limit on a status description.
const gitlabDescriptionMax = 255

// GitLab conflict retries: GitLab answers 409 when two updates of the same
// status race; the writer retries a few times before giving up (retryably).
const (
	gitlabConflictAttempts = 4
	gitlabConflictBackoff  = 250 * time.Millisecond
)

// GitLab posts statuses through GitLab's REST API:
// POST /projects/:id/statuses/:sha, id being the URL-encoded project path.
//
// States: pending→running (Atoll's pending means "being applied", which
// GitLab calls running; its own "pending" means "waiting to start"),
// success→success, failure→failed, error→failed (GitLab has no "error";
// the description says what went wrong). GitLab
// refuses to "transition" a status to the state it already has (400
// "Cannot transition status"); that answer counts as delivered.
type GitLab struct {
	c     *apiClient
	sleep func(ctx context.Context, d time.Duration) error
}

var _ Reporter = (*GitLab)(nil)

// NewGitLab returns a GitLab writer. BaseURL is https://HOST/api/v4;
// Repository the full project path.
func NewGitLab(cfg APIConfig) (*GitLab, error) {
	c, err := newAPIClient("gitlab", cfg)
	if err != nil {
		return nil, err
	}
	return &GitLab{c: c, sleep: sleepCtx}, nil
}

type gitlabStatus struct {
	State       string `json:"state"`
	Name        string `json:"name"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
}

func gitlabState(s State) string {
	switch s {
	case StatePending:
		return "running"
	case StateFailure, StateError:
		return "failed"
	}
	return string(s)
}

// Report posts s, retrying a 409 Conflict a few times.
func (g *GitLab) Report(ctx context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("PRIVATE-TOKEN", g.c.token)
	hdr.Set("Accept", "application/json")
	body := gitlabStatus{
		State:       gitlabState(s.State),
		Name:        s.Context,
		TargetURL:   s.TargetURL,
		Description: truncate(s.Description, gitlabDescriptionMax),
	}
	path := "/projects/" + url.PathEscape(g.c.repo) + "/statuses/" + s.Revision
	var err error
	for attempt := 0; attempt < gitlabConflictAttempts; attempt++ {
		if attempt > 0 {
			if serr := g.sleep(ctx, gitlabConflictBackoff<<(attempt-1)); serr != nil {
				break
			}
		}
		err = g.c.post(ctx, path, hdr, body)
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			break
		}
		if apiErr.StatusCode == http.StatusBadRequest && strings.Contains(apiErr.Message, "Cannot transition status") {
			g.c.log.Debug("status already in this state", "revision", s.Revision, "context", s.Context, "state", body.State)
			return nil
		}
		if apiErr.StatusCode != http.StatusConflict {
			break
		}
	}
	return wrap(s, "gitlab", err)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
