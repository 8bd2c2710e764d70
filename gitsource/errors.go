package gitsource

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is. Errors for which IsTerminal
// reports true will not go away by retrying the same revision with the same
// configuration; everything else (network errors, timeouts, server errors)
// is worth retrying on the next trigger.
var (
	// ErrRefNotFound: the configured branch or tag does not exist on the
	// remote (or the commit is not reachable).
	ErrRefNotFound = errors.New("ref not found")
	// ErrRefDeleted: the configured branch or tag existed at the previous
	// Fetch and is gone now. Errors carrying it also match ErrRefNotFound.
	// The previous snapshot stays in force.
	ErrRefDeleted = errors.New("ref deleted")
	// ErrUnsigned: a commit in the range has no signature while a
	// signature policy is configured.
	ErrUnsigned = errors.New("commit not signed")
	// ErrUntrusted: a commit in the range carries a signature that is
	// invalid or not made by a trusted key.
	ErrUntrusted = errors.New("commit signature not trusted")
	// ErrLimitExceeded: the repository, the worktree or the directory is
	// larger than the configured limits.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrUnsafePath: a revision holds a path that cannot be checked out
	// safely (".." or ".git" components, a symlink pointing out of the
	// tree).
	ErrUnsafePath = errors.New("unsafe path")
	// ErrHostKey: the SSH server's host key is not in known_hosts or does
	// not match it.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("authentication failed")
	// ErrInvalidConfig: the configuration is unusable (returned by the
	// constructors).
	ErrInvalidConfig = errors.New("invalid configuration")
)

// IsTerminal reports whether err will recur when the same revision is
// fetched again with the same configuration. The sources keep polling after
// a terminal error; a new revision or a configuration change may heal it.
func IsTerminal(err error) bool {
	for _, t := range []error{ErrRefNotFound, ErrUnsigned, ErrUntrusted, ErrLimitExceeded, ErrUnsafePath, ErrHostKey, ErrAuth, ErrInvalidConfig} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// VerificationError names the commit whose signature was refused. It wraps
// ErrUnsigned or ErrUntrusted.
type VerificationError struct {
	Commit string // full SHA of the refused commit
	Reason string // human-readable detail, e.g. "no trusted key"
	Err    error  // ErrUnsigned or ErrUntrusted
}

func (e *VerificationError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("verify commit %s: %v", e.Commit, e.Err)
	}
	return fmt.Sprintf("verify commit %s: %v: %s", e.Commit, e.Err, e.Reason)
}

func (e *VerificationError) Unwrap() error { return e.Err }

// RefusedRevision names the refused commit (reconcile.RefusedRevision).
func (e *VerificationError) RefusedRevision() string { return e.Commit }

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
