package reconcile

import "context"

// CommitState is the state of a commit status.
type CommitState string

// The commit states, as git hosts know them.
const (
	StatePending CommitState = "pending"
	StateSuccess CommitState = "success"
	StateFailure CommitState = "failure"
	StateError   CommitState = "error"
)

// CommitStatus is the outcome of a revision, written back to the commit.
type CommitStatus struct {
	// Revision is the commit the status is about.
	Revision string
	// Context names the check (e.g. "atoll/prod").
	Context string
	// Description is one line: "3 nodes ready · +1 added" or the reason.
	Description string
	// TargetURL links to details; may be empty.
	TargetURL string
	State     CommitState
}

// StatusReporter writes commit statuses (GitHub, GitLab, Gitea, git notes).
type StatusReporter interface {
	// Report writes s. The reconciler does not call it again with an
	// identical status; an error is logged and the status is retried on
	// the next pass.
	Report(ctx context.Context, s CommitStatus) error
}
