package reconcile

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AllowRemovalTrailer is the git trailer that lets a revision past the
// breaker: "Atoll-Allow-Removal: <count>" allows taking up to count nodes
// out of service: removed, or newly cordoned or tainted NoExecute (an
// empty revision removes every live node).
const AllowRemovalTrailer = "Atoll-Allow-Removal"

// DefaultMaxRemovalShare is the share of live nodes a revision may
// remove, and the share it may newly cordon or taint NoExecute, without
// the trailer.
const DefaultMaxRemovalShare = 0.5

// ErrBreakerOpen is matched (errors.Is) by every *BreakerError.
var ErrBreakerOpen = errors.New("refused by the mass-removal breaker")

// evicting reports whether an update takes its node out of service: it
// cordons the node or adds a NoExecute taint, which evicts its pods.
func evicting(c Change) bool {
	for _, d := range c.Details {
		switch {
		case d.Field == FieldCordon && d.New == "true",
			d.Field == FieldTaint && d.Op == OpAdded && strings.HasSuffix(d.Key, ":"+string(TaintEffectNoExecute)):
			return true
		}
	}
	return false
}

// BreakerReason says why the breaker refused a revision.
type BreakerReason string

// The breaker's reasons.
const (
	// BreakerEmpty: the revision declares no cluster at all.
	BreakerEmpty BreakerReason = "Empty"
	// BreakerMassRemoval: the revision removes more than the allowed share.
	BreakerMassRemoval BreakerReason = "MassRemoval"
	// BreakerMassEviction: the revision cordons or taints NoExecute more
	// than the allowed share.
	BreakerMassEviction BreakerReason = "MassEviction"
)

// BreakerError explains a refused revision.
type BreakerError struct {
	Reason BreakerReason
	// Removed, Evicted (newly cordoned or tainted NoExecute), Live and
	// Desired count nodes.
	Removed, Evicted, Live, Desired int
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
	case BreakerMassEviction:
		fmt.Fprintf(&b, "revision would cordon or taint NoExecute %d of %d live nodes (%.0f%%, more than the %.0f%% allowed)",
			e.Evicted, e.Live, 100*float64(e.Evicted)/float64(max(e.Live, 1)), 100*e.MaxShare)
		if e.Removed > 0 {
			fmt.Fprintf(&b, " and remove %d", e.Removed)
		}
	default:
		fmt.Fprintf(&b, "revision would remove %d of %d live nodes (%.0f%%, more than the %.0f%% allowed)",
			e.Removed, e.Live, 100*float64(e.Removed)/float64(max(e.Live, 1)), 100*e.MaxShare)
		if e.Evicted > 0 {
			fmt.Fprintf(&b, " and cordon or taint NoExecute %d", e.Evicted)
		}
	}
	if e.Allowed >= 0 {
		fmt.Fprintf(&b, "; the commit's trailer %q allows only %d", AllowRemovalTrailer+": "+strconv.Itoa(e.Allowed), e.Allowed)
	}
	fmt.Fprintf(&b, "; to apply it anyway, add the trailer \"%s: %d\" to the commit message", AllowRemovalTrailer, e.Removed+e.Evicted)
	return b.String()
}

// Is makes a BreakerError match ErrBreakerOpen.
func (e *BreakerError) Is(target error) bool { return target == ErrBreakerOpen }

// CheckBreaker decides whether a plan may be applied. It refuses (with a
// *BreakerError) a revision that declares no clusters, one that removes
// more than maxShare of the live nodes (maxShare <= 0 means
// DefaultMaxRemovalShare), or one that newly cordons or taints NoExecute
// more than maxShare of them, unless commitMessage carries the trailer
// "Atoll-Allow-Removal: N" with N at least the number of nodes removed,
// cordoned or tainted NoExecute. It is pure.
func CheckBreaker(p *Plan, commitMessage string, maxShare float64) error {
	if maxShare <= 0 {
		maxShare = DefaultMaxRemovalShare
	}
	_, _, removed := p.Counts()
	evicted := 0
	for _, c := range p.Changes {
		if c.Action == ActionUpdate && evicting(c) {
			evicted++
		}
	}
	e := &BreakerError{Removed: removed, Evicted: evicted, Live: p.LiveCount, Desired: p.DesiredCount, MaxShare: maxShare, Allowed: -1}
	over := func(n int) bool { return p.LiveCount > 0 && float64(n) > maxShare*float64(p.LiveCount) }
	switch {
	case p.DesiredCount == 0:
		e.Reason = BreakerEmpty
	case over(removed):
		e.Reason = BreakerMassRemoval
	case over(evicted):
		e.Reason = BreakerMassEviction
	default:
		return nil
	}
	if n, ok := AllowedRemovals(commitMessage); ok {
		if n >= removed+evicted {
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
