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
	c, err := newAPIClient("gitea", cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.ownerName(); err != nil {
		return nil, err
	}
	return &Gitea{c: c}, nil
}

type giteaStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

// Report posts s.
func (g *Gitea) Report(ctx context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	repo, _ := g.c.ownerName()
	hdr := http.Header{}
	hdr.Set("Authorization", "token "+g.c.token)
	hdr.Set("Accept", "application/json")
	body := giteaStatus{
		State:       string(s.State),
		TargetURL:   s.TargetURL,
		Description: truncate(s.Description, giteaDescriptionMax),
		Context:     s.Context,
	}
	return wrap(s, "gitea", g.c.post(ctx, "/repos/"+repo+"/statuses/"+s.Revision, hdr, body))
}
