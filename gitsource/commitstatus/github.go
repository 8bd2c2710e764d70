package commitstatus

import (
	"context"
	"net/http"
)

// GitHubAPIVersion is sent as X-GitHub-Api-Version.
const GitHubAPIVersion = "2022-11-28"

// githubDescriptionMax is GitHub's limit on a status description.
const githubDescriptionMax = 140

// GitHub posts statuses through GitHub's REST API:
// POST /repos/{owner}/{repo}/statuses/{sha}. States map one to one.
type GitHub struct{ c *apiClient }

var _ Reporter = (*GitHub)(nil)

// NewGitHub returns a GitHub writer. BaseURL is https://api.github.com, or
// https://HOST/api/v3 for GitHub Enterprise Server.
func NewGitHub(cfg APIConfig) (*GitHub, error) {
	c, err := newAPIClient("github", cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.ownerName(); err != nil {
		return nil, err
	}
	return &GitHub{c: c}, nil
}

type githubStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

// Report posts s. The description is cut to 140 characters.
func (g *GitHub) Report(ctx context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	repo, _ := g.c.ownerName()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+g.c.token)
	hdr.Set("Accept", "application/vnd.github+json")
	hdr.Set("X-GitHub-Api-Version", GitHubAPIVersion)
	body := githubStatus{
		State:       string(s.State),
		TargetURL:   s.TargetURL,
		Description: truncate(s.Description, githubDescriptionMax),
		Context:     s.Context,
	}
	return wrap(s, "github", g.c.post(ctx, "/repos/"+repo+"/statuses/"+s.Revision, hdr, body))
}
