package commitstatus

import (
	"context"
	"errors"
	"fmt"
)

// Superseded marks commits the reconciler skipped over (pushed between two
// polls) as superseded by the revision it applied. Each skipped commit gets
// a status in context statusContext with state success and description
// "superseded by <short sha>".
//
// Why success: a skipped commit is an ancestor of the applied one, so its
// changes were applied — as part of the later revision. failure or error
// would turn a pull request or a branch-protection check red although
// nothing failed, and pending would never resolve. GitHub's and Gitea's
// commit statuses have no neutral "skipped" state, and GitLab's "canceled"
// reads as if the change had been dropped. The description carries the
// distinction.
//
// Every commit is attempted; the errors are joined. The applied revision
// itself and duplicates in skipped are left out.
func Superseded(ctx context.Context, r Reporter, statusContext string, skipped []string, applied, targetURL string) error {
	if statusContext == "" {
		statusContext = DefaultContext
	}
	seen := map[string]bool{applied: true}
	var errs []error
	for _, sha := range skipped {
		if seen[sha] {
			continue
		}
		seen[sha] = true
		s := SupersededStatus(statusContext, sha, applied, targetURL)
		if err := r.Report(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("mark %s superseded: %w", short(sha), err))
		}
	}
	return errors.Join(errs...)
}

// SupersededStatus is the status Superseded reports for one skipped commit.
func SupersededStatus(statusContext, skipped, applied, targetURL string) Status {
	return Status{
		Revision:    skipped,
		Context:     statusContext,
		State:       StateSuccess,
		Description: "superseded by " + short(applied),
		TargetURL:   targetURL,
	}
}
