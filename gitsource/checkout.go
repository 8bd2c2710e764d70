package gitsource

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// checkoutTree writes the files of tree into dir, which must not exist yet
// or be empty. Every write goes through a billy filesystem bound to dir
// (osfs.WithBoundOS), so no tree entry can write outside it
// (CVE-2023-49569); entries are validated on top of that. Submodules are
// skipped. The limits count files and bytes before anything is written.
func checkoutTree(tree *object.Tree, dir string, lim Limits) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create worktree %s: %w", dir, err)
	}
	bfs := osfs.New(dir, osfs.WithBoundOS())

	// First pass: validate and count, so a too-large revision writes nothing.
	var files int
	var size int64
	err := tree.Files().ForEach(func(f *object.File) error {
		if err := validTreePath(f.Name); err != nil {
			return err
		}
		files++
		size += f.Size
		if files > lim.MaxFiles {
			return fmt.Errorf("more than %d files (Limits.MaxFiles): %w", lim.MaxFiles, ErrLimitExceeded)
		}
		if size > lim.MaxBytes {
			return fmt.Errorf("more than %d bytes of files (Limits.MaxBytes): %w", lim.MaxBytes, ErrLimitExceeded)
		}
		return nil
	})
	if err != nil {
		return err
	}

	return tree.Files().ForEach(func(f *object.File) error {
		if dir := path.Dir(f.Name); dir != "." {
			if err := bfs.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create directory %s: %w", dir, err)
			}
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", f.Name, err)
			}
			if err := validSymlink(f.Name, target); err != nil {
				return err
			}
			if err := bfs.Symlink(target, f.Name); err != nil {
				return fmt.Errorf("create symlink %s: %w", f.Name, err)
			}
			return nil
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		default:
			return nil // submodules and other special entries are not checked out
		}
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
		defer r.Close()
		w, err := bfs.OpenFile(f.Name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
		if err != nil {
			return fmt.Errorf("create %s: %w", f.Name, err)
		}
		if _, err := io.Copy(w, io.LimitReader(r, f.Size)); err != nil {
			w.Close()
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		return nil
	})
}

func validTreePath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
	}
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "", part == ".", part == "..",
			strings.EqualFold(strings.TrimRight(part, ". "), ".git"):
			return fmt.Errorf("path %q: %w", name, ErrUnsafePath)
		}
	}
	return nil
}

func validSymlink(name, target string) error {
	if target == "" || path.IsAbs(target) || strings.Contains(target, "\\") {
		return fmt.Errorf("symlink %s -> %s: %w", name, target, ErrUnsafePath)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink %s -> %s: points outside the repository: %w", name, target, ErrUnsafePath)
	}
	return nil
}

// pruneWorktrees removes checkouts other than the last two snapshots'.
func (s *GitSource) pruneWorktrees() {
	entries, err := os.ReadDir(s.treesDir)
	if err != nil {
		return
	}
	keep := map[string]bool{s.last.Dir: true, s.prevDir: true}
	for _, e := range entries {
		p := filepath.Join(s.treesDir, e.Name())
		if !keep[p] {
			if err := os.RemoveAll(p); err != nil {
				s.log.Warn("remove old worktree failed", "dir", p, "err", err)
			}
		}
	}
}

// LocalRepo is a git repository on this machine, opened read-only: what
// `atoll plan --repo` reads revisions from.
type LocalRepo struct {
	path string
	repo *git.Repository
}

// OpenLocal opens the repository at path or at a directory above it.
func OpenLocal(path string) (*LocalRepo, error) {
	r, err := git.PlainOpenWithOptions(path, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	return &LocalRepo{path: path, repo: r}, nil
}

// Resolve returns the commit rev names: a branch, tag, commit or an
// expression such as "HEAD~1".
func (l *LocalRepo) Resolve(rev string) (*object.Commit, error) {
	hash, err := l.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve revision %q in %s: %w", rev, l.path, err)
	}
	c, err := l.repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", hash, err)
	}
	return c, nil
}

// Checkout writes the tree of rev into dir, which must not exist yet or
// be empty, the way a GitSource checks out what it fetched (bound to dir,
// every path and symbolic link checked, within lim), and returns the
// commit.
func (l *LocalRepo) Checkout(rev, dir string, lim Limits) (Commit, error) {
	c, err := l.Resolve(rev)
	if err != nil {
		return Commit{}, err
	}
	tree, err := c.Tree()
	if err != nil {
		return Commit{}, fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	if err := checkoutTree(tree, dir, lim.withDefaults()); err != nil {
		return Commit{}, fmt.Errorf("check out %s: %w", c.Hash, err)
	}
	return commitInfo(c), nil
}

// RemoteURL returns the first URL of the named remote.
func (l *LocalRepo) RemoteURL(name string) (string, error) {
	r, err := l.repo.Remote(name)
	if err != nil {
		return "", fmt.Errorf("remote %q of %s: %w", name, l.path, err)
	}
	return r.Config().URLs[0], nil
}
