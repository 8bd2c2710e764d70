package main

import (
	"context"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/reconcile"
)

// gitsourceFetcher is what GitSource and DirSource have in common.
type gitsourceFetcher interface {
	Fetch(ctx context.Context) (gitsource.Snapshot, error)
	Changes() <-chan struct{}
}

// fleetSource adapts a gitsource source to reconcile.Source.
type fleetSource struct{ src gitsourceFetcher }

var _ reconcile.Source = fleetSource{}

func (f fleetSource) Fetch(ctx context.Context) (reconcile.Snapshot, error) {
	s, err := f.src.Fetch(ctx)
	if err != nil {
		return reconcile.Snapshot{}, err
	}
	out := reconcile.Snapshot{Revision: s.Revision, Dir: s.Dir, Message: s.Message}
	// Commits is head first; the others were skipped over.
	for i, c := range s.Commits {
		if i > 0 {
			out.Superseded = append(out.Superseded, c.Hash)
		}
	}
	return out, nil
}

func (f fleetSource) Changes() <-chan struct{} { return f.src.Changes() }
