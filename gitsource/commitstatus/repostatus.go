package commitstatus

import (
	"context"
	"net/http"
)

// GitHub and Gitea (whose API follows GitHub's) address a repository as
// owner/name and take the same status:
// POST {base}/repos/{owner}/{name}/statuses/{sha}. They differ in headers
// and the description limit only.

// repoStatus is the body of that POST.
type repoStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

// newRepoStatusClient is an apiClient for a provider with the
// owner/name statuses API.
func newRepoStatusClient(provider string, cfg APIConfig) (*apiClient, error) {
	c, err := newAPIClient(provider, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.ownerName(); err != nil {
		return nil, err
	}
	return c, nil
}

// postRepoStatus posts s with hdr, its state as it is and its description
// cut to descriptionMax.
func (c *apiClient) postRepoStatus(ctx context.Context, s Status, hdr http.Header, descriptionMax int) error {
	if err := s.validate(); err != nil {
		return err
	}
	repo, _ := c.ownerName()
	body := repoStatus{
		State:       string(s.State),
		TargetURL:   s.TargetURL,
		Description: truncate(s.Description, descriptionMax),
		Context:     s.Context,
	}
	return wrap(s, c.provider, c.post(ctx, "/repos/"+repo+"/statuses/"+s.Revision, hdr, body))
}
