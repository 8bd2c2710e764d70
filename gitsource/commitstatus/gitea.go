package commitstatus

import (
	"context"
	"net/http"
)

// giteaDescriptionMax keeps descriptions readable; Gitea itself stores text.
const giteaDescriptionMax = 1000

// Gitea posts statuses through Gitea's (and Forgejo's) API:
// POST /api/v1/repos/{owner}/{repo}/statuses/{sha}. States map one to one
// (Gitea's extra "warning" is not used).
type Gitea struct{ c *apiClient }

var _ Reporter = (*Gitea)(nil)

// NewGitea returns a Gitea writer. BaseURL is the API root,
// https://HOST[/PREFIX]/api/v1.
func NewGitea(cfg APIConfig) (*Gitea, error) {
	c, err := newRepoStatusClient("gitea", cfg)
	if err != nil {
		return nil, err
	}
	return &Gitea{c: c}, nil
}

// Report posts s.
func (g *Gitea) Report(ctx context.Context, s Status) error {
	hdr := http.Header{}
	hdr.Set("Authorization", "token "+g.c.token)
	hdr.Set("Accept", "application/json")
	return g.c.postRepoStatus(ctx, s, hdr, giteaDescriptionMax)
}
