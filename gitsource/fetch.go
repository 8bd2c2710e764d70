package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// resolve returns the hash the remote advertises for the ref: a commit, or
// for annotated tags the tag object. For Ref.Commit it is that commit and
// costs no network call.
func (s *GitSource) resolve(ctx context.Context) (plumbing.Hash, error) {
	if s.cfg.Ref.Commit != "" {
		return plumbing.NewHash(s.cfg.Ref.Commit), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	refs, err := s.remote.list(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, fmt.Errorf("list refs of %s: %s: %w (repository is empty)", s.remote.redacted, s.refName, ErrRefNotFound)
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("list refs of %s: %w", s.remote.redacted, s.remote.classify(err))
	}
	for _, r := range refs {
		if r.Name() == s.refName && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("list refs of %s: %s: %w", s.remote.redacted, s.refName, ErrRefNotFound)
}

func (s *GitSource) openRepo() (*git.Repository, error) {
	if s.repo != nil {
		return s.repo, nil
	}
	s.budget = &writeBudget{max: s.cfg.Limits.MaxRepoBytes}
	if err := os.MkdirAll(s.repoDir, 0o700); err != nil {
		return nil, fmt.Errorf("create repository directory: %w", err)
	}
	fs := &budgetFS{Filesystem: osfs.New(s.repoDir, osfs.WithBoundOS()), budget: s.budget}
	st := filesystem.NewStorage(fs, cache.NewObjectLRUDefault())
	repo, err := git.Init(st, nil)
	if errors.Is(err, git.ErrRepositoryAlreadyExists) {
		repo, err = git.Open(st, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("open cache repository %s: %w", s.repoDir, err)
	}
	s.repo, s.storage = repo, st
	return repo, nil
}

// fetchHead makes sure the advertised object and its commit are local and
// returns the commit and the object the ref pointed to (which differs from
// advertised if the ref moved since it was listed). It fetches only when
// the object is missing.
func (s *GitSource) fetchHead(ctx context.Context, repo *git.Repository, advertised plumbing.Hash) (*object.Commit, plumbing.Hash, error) {
	if repo.Storer.HasEncodedObject(advertised) != nil {
		depth := 1 // the head and its tree; deepen later if the range needs it
		if _, err := repo.Reference(localRef, false); err != nil || s.cfg.Depth == -1 {
			depth = s.cfg.Depth // first fetch into this cache
		}
		if err := s.fetch(ctx, repo, depth); err != nil {
			return nil, advertised, err
		}
		ref, err := repo.Reference(localRef, true)
		if err != nil {
			return nil, advertised, fmt.Errorf("read fetched head: %w", err)
		}
		advertised = ref.Hash()
	}
	c, err := peelToCommit(repo, advertised)
	return c, advertised, err
}

// fetch fetches the ref into localRef. depth -1 fetches everything that is
// missing; depth n > 0 fetches n commits deep and declares the local
// shallow commits to the server, so the server never assumes the cache
// holds history it does not (which a depth-0 fetch into a shallow cache
// would, leaving objects missing after a force-push).
func (s *GitSource) fetch(ctx context.Context, repo *git.Repository, depth int) error {
	src := "+" + s.refName.String()
	if s.cfg.Ref.Commit != "" {
		src = s.cfg.Ref.Commit
	}
	return s.fetchSpec(ctx, repo, src, localRef, depth)
}

// fetchSpec fetches src (a ref or a full SHA) into the local ref dst.
func (s *GitSource) fetchSpec(ctx context.Context, repo *git.Repository, src string, dst plumbing.ReferenceName, depth int) error {
	size, err := dirSize(filepath.Join(s.repoDir, "objects"))
	if err != nil {
		return fmt.Errorf("measure cache repository: %w", err)
	}
	s.budget.start(size)
	defer s.budget.stop()

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err = s.remote.fetch(ctx, repo.Storer, &git.FetchOptions{
		RefSpecs: []config.RefSpec{config.RefSpec(src + ":" + dst.String())},
		Depth:    max(depth, 0),
		Tags:     git.NoTags,
		Force:    true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		s.removeTempPacks()
	}
	if s.budget.exceeded.Load() {
		return fmt.Errorf("fetch %s: repository larger than %d bytes (Limits.MaxRepoBytes): %w", s.remote.redacted, s.cfg.Limits.MaxRepoBytes, ErrLimitExceeded)
	}
	if err != nil {
		if errors.Is(err, git.ErrExactSHA1NotSupported) {
			return fmt.Errorf("fetch %s %s: server does not allow fetching a commit by SHA: %w", s.remote.redacted, src, err)
		}
		if fullSHA.MatchString(src) && strings.Contains(err.Error(), "not our ref") {
			return fmt.Errorf("fetch %s %s: %w: %w", s.remote.redacted, src, ErrRefNotFound, err)
		}
		return fmt.Errorf("fetch %s %s: %w", s.remote.redacted, src, s.remote.classify(err))
	}
	s.log.Debug("fetched", "depth", depth, "took", time.Since(start))
	return nil
}

func (s *GitSource) removeTempPacks() {
	matches, _ := filepath.Glob(filepath.Join(s.repoDir, "objects", "pack", "tmp_*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

func peelToCommit(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := repo.Storer.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("read object %s: %w", h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(repo.Storer, obj)
		case plumbing.TagObject:
			tag, err := object.DecodeTag(repo.Storer, obj)
			if err != nil {
				return nil, fmt.Errorf("decode tag %s: %w", h, err)
			}
			h = tag.Target
		default:
			return nil, fmt.Errorf("resolve %s: %s is not a commit: %w", h, obj.Type(), ErrRefNotFound)
		}
	}
	return nil, fmt.Errorf("resolve %s: tag chain too long", h)
}
