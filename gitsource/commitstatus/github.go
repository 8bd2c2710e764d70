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
	c, err := newRepoStatusClient("github", cfg)
	if err != nil {
		return nil, err
	}
	return &GitHub{c: c}, nil
}

// Report posts s. The description is cut to 140 characters.
func (g *GitHub) Report(ctx context.Context, s Status) error {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+g.c.token)
	hdr.Set("Accept", "application/vnd.github+json")
	hdr.Set("X-GitHub-Api-Version", GitHubAPIVersion)
	return g.c.postRepoStatus(ctx, s, hdr, githubDescriptionMax)
}
