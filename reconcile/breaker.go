package reconcile

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AllowRemovalTrailer is the git trailer that lets a revision past the
// breaker: "Atoll-Allow-Removal: <count>" allows removing up to count
// nodes (an empty revision removes every live node).
const AllowRemovalTrailer = "Atoll-Allow-Removal"

// DefaultMaxRemovalShare is the share of live nodes a revision may remove
// without the trailer.
const DefaultMaxRemovalShare = 0.5

// ErrBreakerOpen is matched (errors.Is) by every *BreakerError.
var ErrBreakerOpen = errors.New("refused by the mass-removal breaker")

// BreakerReason says why the breaker refused a revision.
type BreakerReason string

// The breaker's reasons.
const (
	// BreakerEmpty: the revision declares no cluster at all.
	BreakerEmpty BreakerReason = "Empty"
	// BreakerMassRemoval: the revision removes more than the allowed share.
	BreakerMassRemoval BreakerReason = "MassRemoval"
)

// BreakerError explains a refused revision.
type BreakerError struct {
	Reason BreakerReason
	// Removed, Live and Desired count nodes.
	Removed, Live, Desired int
	// MaxShare is the share of Live that may go without the trailer.
	MaxShare float64
	// Allowed is the trailer's count, or -1 when the trailer is absent.
	Allowed int
}

func (e *BreakerError) Error() string {
	var b strings.Builder
	b.WriteString("breaker: ")
	switch e.Reason {
	case BreakerEmpty:
		if e.Live == 0 {
			b.WriteString("revision declares no clusters (an empty render usually means a broken revision)")
		} else {
			fmt.Fprintf(&b, "revision declares no clusters and would remove all %d live %s", e.Live, plural(e.Live, "node", "nodes"))
		}
	default:
		fmt.Fprintf(&b, "revision would remove %d of %d live nodes (%.0f%%, more than the %.0f%% allowed)",
			e.Removed, e.Live, 100*float64(e.Removed)/float64(max(e.Live, 1)), 100*e.MaxShare)
	}
	if e.Allowed >= 0 {
		fmt.Fprintf(&b, "; the commit's trailer %q allows only %d", AllowRemovalTrailer+": "+strconv.Itoa(e.Allowed), e.Allowed)
	}
	fmt.Fprintf(&b, "; to apply it anyway, add the trailer \"%s: %d\" to the commit message", AllowRemovalTrailer, e.Removed)
	return b.String()
}

// Is makes a BreakerError match ErrBreakerOpen.
func (e *BreakerError) Is(target error) bool { return target == ErrBreakerOpen }

// CheckBreaker decides whether a plan may be applied. It refuses (with a
// *BreakerError) a revision that declares no clusters, or one that removes
// more than maxShare of the live nodes (maxShare <= 0 means
// DefaultMaxRemovalShare), unless commitMessage carries the trailer
// "Atoll-Allow-Removal: N" with N at least the number of nodes removed.
// It is pure.
func CheckBreaker(p *Plan, commitMessage string, maxShare float64) error {
	if maxShare <= 0 {
		maxShare = DefaultMaxRemovalShare
	}
	_, _, removed := p.Counts()
	e := &BreakerError{Removed: removed, Live: p.LiveCount, Desired: p.DesiredCount, MaxShare: maxShare, Allowed: -1}
	switch {
	case p.DesiredCount == 0:
		e.Reason = BreakerEmpty
	case p.LiveCount > 0 && float64(removed) > maxShare*float64(p.LiveCount):
		e.Reason = BreakerMassRemoval
	default:
		return nil
	}
	if n, ok := AllowedRemovals(commitMessage); ok {
		if n >= removed {
			return nil
		}
		e.Allowed = n
	}
	return e
}

// AllowedRemovals returns the count of the Atoll-Allow-Removal trailer in
// a commit message. Like git, it looks at the trailer block, the last
// paragraph; the key is matched case-insensitively and the last
// occurrence wins.
func AllowedRemovals(commitMessage string) (int, bool) {
	msg := strings.TrimRight(strings.ReplaceAll(commitMessage, "\r\n", "\n"), "\n \t")
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	} else {
		return 0, false // a subject line alone has no trailers
	}
	n, found := 0, false
	sc := bufio.NewScanner(strings.NewReader(msg))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), AllowRemovalTrailer) {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || v < 0 {
			continue
		}
		n, found = v, true
	}
	return n, found
}
