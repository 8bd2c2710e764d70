package reconcile

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every validation error: the
// revision is wrong and retrying it cannot help.
var ErrInvalid = errors.New("invalid fleet declarations")

// FieldError is one problem in a declaration, located in a source file.
type FieldError struct {
	// File is the source file, relative to the repository root.
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	// Field is the path of the offending field, e.g.
	// "spec.node.taints[0].effect"; empty for a whole document or file.
	Field string
	// Message says what is wrong.
	Message string

	cause error // a sentinel such as ErrRemoteRefused, for errors.Is
}

// Error renders "file:line: field: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the sentinel cause, if any (ErrRemoteRefused,
// ErrOutsideRoot).
func (e *FieldError) Unwrap() error { return e.cause }

// ErrorList is every problem found in a revision, sorted by file and line.
type ErrorList []*FieldError

// Error renders one problem per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Is makes an ErrorList match ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes the individual errors to errors.Is/As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// sortErrors orders by file, line, field and message, dropping exact
// duplicates.
func sortErrors(l ErrorList) ErrorList {
	slices.SortStableFunc(l, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
	})
	return slices.CompactFunc(l, func(a, b *FieldError) bool { return a.Error() == b.Error() })
}

// errorListOrNil returns nil for an empty list so callers can test err != nil.
func errorListOrNil(l ErrorList) error {
	if len(l) == 0 {
		return nil
	}
	return sortErrors(l)
}
