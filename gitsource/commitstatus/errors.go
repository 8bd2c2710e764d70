package commitstatus

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrInvalidConfig is returned by the constructors for unusable settings.
var ErrInvalidConfig = errors.New("invalid configuration")

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// remoteConfigError is gitsource's refusal of the notes remote's settings
// (gitsource.ErrInvalidConfig); it matches ErrInvalidConfig as well.
type remoteConfigError struct{ err error }

func (e remoteConfigError) Error() string   { return "notes: " + e.err.Error() }
func (e remoteConfigError) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

// RetryableError is a delivery that may succeed later: the provider was
// unreachable, overloaded or rate-limited us. After, when not zero, is how
// long the provider asked us to wait (Retry-After, rate-limit reset).
type RetryableError struct {
	After time.Duration
	Err   error
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// TerminalError is a delivery that will fail the same way if repeated:
// bad credentials, no permission, unknown repository or commit, a status
// the provider refuses.
type TerminalError struct{ Err error }

func (e *TerminalError) Error() string { return e.Err.Error() }
func (e *TerminalError) Unwrap() error { return e.Err }

func terminal(err error) error { return &TerminalError{Err: err} }

func retryable(err error, after time.Duration) error {
	return &RetryableError{Err: err, After: after}
}

// IsTerminal reports whether err will recur when the same status is posted
// again (see TerminalError).
func IsTerminal(err error) bool {
	var t *TerminalError
	return errors.As(err, &t)
}

// IsRetryable reports whether err is worth retrying: any error that is
// neither terminal nor a configuration error.
func IsRetryable(err error) bool {
	if err == nil || IsTerminal(err) || errors.Is(err, ErrInvalidConfig) {
		return false
	}
	return true
}

// RetryAfter returns the wait the provider asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryableError
	if errors.As(err, &r) && r.After > 0 {
		return r.After, true
	}
	return 0, false
}

// APIError is a provider's HTTP answer other than success. Message is the
// provider's error text, with the token scrubbed out.
type APIError struct {
	Provider   string // "github", "gitlab", "gitea"
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s answered %d %s", e.Provider, e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("%s answered %d %s: %s", e.Provider, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// IsConfigError reports whether err is an ErrInvalidConfig.
func IsConfigError(err error) bool { return errors.Is(err, ErrInvalidConfig) }
