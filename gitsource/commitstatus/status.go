package commitstatus

import (
	"context"
	"fmt"
	"unicode/utf8"
)

// State is the outcome a status reports. The values are the reconciler's;
// each writer maps them onto its provider's states.
type State string

// States.
const (
	StatePending State = "pending" // a revision was picked up and is being applied
	StateSuccess State = "success" // applied, every declared node Ready
	StateFailure State = "failure" // refused or failed: the revision is at fault
	StateError   State = "error"   // Atoll could not finish: not the revision's fault
)

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	switch s {
	case StatePending, StateSuccess, StateFailure, StateError:
		return true
	}
	return false
}

// Status is one commit status. It has the shape of the reconciler's
// CommitStatus, field for field, so cmd adapts one to the other by copying.
type Status struct {
	Revision    string // full commit SHA
	Context     string // e.g. "atoll/sync", "atoll/plan"
	Description string // one line; writers truncate to their provider's limit
	TargetURL   string // optional link, e.g. to a dashboard
	State       State
}

// key identifies what a newer status replaces: one per revision and context.
func (s Status) key() string { return s.Revision + "\x00" + s.Context }

// validate checks what every writer needs.
func (s Status) validate() error {
	switch {
	case !fullSHA(s.Revision):
		return terminal(fmt.Errorf("revision %q is not a full commit SHA", s.Revision))
	case s.Context == "":
		return terminal(fmt.Errorf("status for %s has no context", short(s.Revision)))
	case !s.State.Valid():
		return terminal(fmt.Errorf("status for %s: unknown state %q", short(s.Revision), s.State))
	}
	return nil
}

// Reporter posts a commit status. Report returns once the status is
// delivered (writers) or accepted for delivery (Queue). Errors match
// IsRetryable or IsTerminal; a Reporter never puts its credentials into an
// error.
type Reporter interface {
	Report(ctx context.Context, s Status) error
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(ctx context.Context, s Status) error

// Report calls f.
func (f ReporterFunc) Report(ctx context.Context, s Status) error { return f(ctx, s) }

// DefaultContext is the context of the reconciler's sync status.
const DefaultContext = "atoll/sync"

func fullSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// short is the 7-character abbreviation of a SHA.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// truncate shortens s to at most max runes, ending in "…" when cut.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}
