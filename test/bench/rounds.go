package bench

import (
	"cmp"
	"slices"
	"time"
)

// delegationRound is one delegated run and the baselines either side of it.
type delegationRound struct {
	before, delegated, after time.Duration
}

func (r delegationRound) direct() time.Duration { return (r.before + r.after) / 2 }

func (r delegationRound) ratio() float64 { return r.delegated.Seconds() / r.direct().Seconds() }

// medianRound is the round of the median ratio (the lower middle one of an
// even number).
func medianRound(rounds []delegationRound) delegationRound {
	sorted := slices.Clone(rounds)
	slices.SortFunc(sorted, func(a, b delegationRound) int { return cmp.Compare(a.ratio(), b.ratio()) })
	return sorted[(len(sorted)-1)/2]
}
