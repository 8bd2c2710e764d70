package reconcile

import "context"

// Snapshot is one revision of the fleet declarations as the reconciler
// sees it. cmd adapts its sources (gitsource) to this type.
type Snapshot struct {
	// Revision identifies the content (a commit SHA, or a content hash
	// for a directory).
	Revision string
	// Dir is the repository root of this revision; the fleet path
	// (Config.Path) is relative to it. Read-only.
	Dir string
	// Message is the head commit's message ("" for a directory); the
	// breaker reads its Atoll-Allow-Removal trailer.
	Message string
	// Superseded lists revisions between the previous snapshot and this
	// one that were never applied (for "superseded" statuses); may be nil.
	Superseded []string
}

// RefusedRevision is implemented by a Fetch error that refuses a revision
// outright, for example a commit without a trusted signature: the
// reconciler marks that commit failed, and applies nothing of it.
type RefusedRevision interface {
	error
	RefusedRevision() string
}

// Source is where revisions come from.
type Source interface {
	// Fetch returns the current revision. On error the reconciler keeps
	// what it applied last and tries again on the next signal or retry;
	// an error that is a RefusedRevision also fails that commit's status.
	Fetch(ctx context.Context) (Snapshot, error)
	// Changes signals that Fetch may return something new; signals
	// coalesce. The source's own Run produces them.
	Changes() <-chan struct{}
}
