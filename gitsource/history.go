package gitsource

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxAncestorWalk bounds the walk over the base's history.
const maxAncestorWalk = 100000

type commitRangeResult struct {
	commits []*object.Commit // head first, then breadth-first by parents
	base    string           // "" when unknown or not local
	partial bool
	shallow bool // the walk met a missing parent (deepening may help)
}

// commitRange lists the commits reachable from head and not from base, in
// the local (possibly shallow) history. Missing parents — a shallow
// boundary — end the walk and mark the result partial, as does reaching
// limit.
func commitRange(repo *git.Repository, head *object.Commit, base string, limit int) (commitRangeResult, error) {
	if base == "" {
		return commitRangeResult{commits: []*object.Commit{head}}, nil
	}
	baseHash := plumbing.NewHash(base)
	if baseHash == head.Hash {
		return commitRangeResult{base: base}, nil
	}
	baseCommit, err := repo.CommitObject(baseHash)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return commitRangeResult{commits: []*object.Commit{head}, partial: true}, nil
	}
	if err != nil {
		return commitRangeResult{}, fmt.Errorf("read base commit %s: %w", base, err)
	}

	// Everything reachable from base that is in the local history.
	excluded := map[plumbing.Hash]bool{}
	queue := []*object.Commit{baseCommit}
	excluded[baseHash] = true
	for len(queue) > 0 && len(excluded) < maxAncestorWalk {
		c := queue[0]
		queue = queue[1:]
		for _, p := range c.ParentHashes {
			if excluded[p] {
				continue
			}
			pc, err := repo.CommitObject(p)
			if err != nil {
				continue // shallow boundary
			}
			excluded[p] = true
			queue = append(queue, pc)
		}
	}

	res := commitRangeResult{base: base}
	seen := map[plumbing.Hash]bool{head.Hash: true}
	queue = []*object.Commit{head}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if excluded[c.Hash] {
			continue
		}
		if len(res.commits) == limit {
			res.partial = true
			break
		}
		res.commits = append(res.commits, c)
		for _, p := range c.ParentHashes {
			if seen[p] {
				continue
			}
			seen[p] = true
			if excluded[p] {
				continue
			}
			pc, err := repo.CommitObject(p)
			if err != nil {
				res.partial, res.shallow = true, true // shallow boundary before reaching base
				continue
			}
			queue = append(queue, pc)
		}
	}
	return res, nil
}
