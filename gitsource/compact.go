package gitsource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// compactAfterPacks is the number of pack files (one per fetch) beyond
// which the cache repository is compacted. A variable for tests.
var compactAfterPacks = 16

// appliedRef keeps the last snapshot's commit reachable, so compaction
// keeps it and its history for the next commit range.
const appliedRef = plumbing.ReferenceName("refs/atoll/applied")

// compactRepo rewrites the object storage as one pack holding only what is
// reachable from roots, dropping what force-pushes orphaned. Unlike go-git's
// RepackObjects it tolerates the missing parents of a shallow history.
func compactRepo(st *filesystem.Storage, roots []plumbing.Hash) error {
	seen := map[plumbing.Hash]bool{}
	var order []plumbing.Hash
	stack := append([]plumbing.Hash(nil), roots...)
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] || h.IsZero() {
			continue
		}
		obj, err := st.EncodedObject(plumbing.AnyObject, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			continue // beyond the shallow boundary
		}
		if err != nil {
			return fmt.Errorf("read object %s: %w", h, err)
		}
		seen[h] = true
		order = append(order, h)
		switch obj.Type() {
		case plumbing.CommitObject:
			c, err := object.DecodeCommit(st, obj)
			if err != nil {
				return fmt.Errorf("decode commit %s: %w", h, err)
			}
			stack = append(stack, c.TreeHash)
			stack = append(stack, c.ParentHashes...)
		case plumbing.TreeObject:
			t, err := object.DecodeTree(st, obj)
			if err != nil {
				return fmt.Errorf("decode tree %s: %w", h, err)
			}
			for _, e := range t.Entries {
				if e.Mode != filemode.Submodule {
					stack = append(stack, e.Hash)
				}
			}
		case plumbing.TagObject:
			t, err := object.DecodeTag(st, obj)
			if err != nil {
				return fmt.Errorf("decode tag %s: %w", h, err)
			}
			stack = append(stack, t.Target)
		}
	}

	oldPacks, err := st.ObjectPacks()
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	w, err := st.PackfileWriter()
	if err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	newPack, err := packfile.NewEncoder(w, st, false).Encode(order, 10)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	for _, h := range oldPacks {
		if h == newPack {
			continue
		}
		if err := st.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil {
			return fmt.Errorf("delete pack %s: %w", h, err)
		}
	}
	var loose []plumbing.Hash
	if err := st.ForEachObjectHash(func(h plumbing.Hash) error { loose = append(loose, h); return nil }); err != nil {
		return fmt.Errorf("list loose objects: %w", err)
	}
	for _, h := range loose {
		if err := st.DeleteLooseObject(h); err != nil {
			return fmt.Errorf("delete loose object %s: %w", h, err)
		}
	}
	shallow, err := st.Shallow()
	if err != nil {
		return fmt.Errorf("read shallow list: %w", err)
	}
	var keep []plumbing.Hash
	for _, h := range shallow {
		if seen[h] {
			keep = append(keep, h)
		}
	}
	if err := st.SetShallow(keep); err != nil {
		return fmt.Errorf("write shallow list: %w", err)
	}
	return nil
}

func countPacks(repoDir string) int {
	packs, _ := filepath.Glob(filepath.Join(repoDir, "objects", "pack", "*.pack"))
	return len(packs)
}

// maintain records the applied head and compacts the cache repository
// once fetches have piled up packs. Failures are logged, not returned: the
// snapshot is good, and the cache is rebuilt from scratch if it breaks.
func (s *GitSource) maintain(repo *git.Repository, head plumbing.Hash) {
	if err := repo.Storer.SetReference(plumbing.NewHashReference(appliedRef, head)); err != nil {
		s.log.Warn("record applied revision failed", "err", err)
		return
	}
	if countPacks(s.repoDir) <= compactAfterPacks {
		return
	}
	roots := []plumbing.Hash{head}
	if ref, err := repo.Reference(localRef, false); err == nil {
		roots = append(roots, ref.Hash())
	}
	start := time.Now()
	if err := compactRepo(s.storage, roots); err != nil {
		s.log.Warn("compact cache repository failed; starting afresh", "err", err)
		s.resetRepo()
		return
	}
	// The storage caches the pack indexes it has seen: open afresh.
	s.repo, s.storage = nil, nil
	s.log.Debug("compacted cache repository", "took", time.Since(start))
}

// resetRepo drops the cache repository; the next fetch clones again.
func (s *GitSource) resetRepo() {
	s.repo, s.storage = nil, nil
	if err := os.RemoveAll(s.repoDir); err != nil {
		s.log.Warn("remove cache repository failed", "err", err)
	}
}
