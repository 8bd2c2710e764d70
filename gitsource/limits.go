package gitsource

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/go-git/go-billy/v5"
)

// Default limits. A fleet repository holds YAML for clusters and policies;
// these leave two orders of magnitude of headroom.
const (
	DefaultMaxRepoBytes int64 = 256 << 20 // object storage on disk
	DefaultMaxFiles           = 10000     // files in one revision
	DefaultMaxBytes     int64 = 64 << 20  // bytes of all files in one revision
	DefaultMaxCommits         = 1000      // commits listed in Snapshot.Commits
)

// Limits bound what a source accepts. Zero fields take the defaults above.
type Limits struct {
	// MaxRepoBytes bounds the git object storage on disk (git only). A
	// fetch that would grow it beyond fails with ErrLimitExceeded while it
	// is being written, not afterwards.
	MaxRepoBytes int64
	// MaxFiles bounds the number of files in one revision.
	MaxFiles int
	// MaxBytes bounds the total size of the files in one revision.
	MaxBytes int64
	// MaxCommits bounds Snapshot.Commits (git only); beyond it the list is
	// cut and Snapshot.Partial set.
	MaxCommits int
}

func (l Limits) withDefaults() Limits {
	if l.MaxRepoBytes <= 0 {
		l.MaxRepoBytes = DefaultMaxRepoBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxCommits <= 0 {
		l.MaxCommits = DefaultMaxCommits
	}
	return l
}

// writeBudget counts bytes written through a budgetFS while active
// (during a fetch; compaction temporarily needs room for two copies).
type writeBudget struct {
	max      int64
	active   atomic.Bool
	used     atomic.Int64
	exceeded atomic.Bool
}

// start activates the budget with used bytes already on disk.
func (b *writeBudget) start(used int64) {
	b.used.Store(used)
	b.exceeded.Store(false)
	b.active.Store(true)
}

func (b *writeBudget) stop() { b.active.Store(false) }

func (b *writeBudget) add(n int) error {
	if !b.active.Load() {
		return nil
	}
	if b.used.Add(int64(n)) > b.max {
		b.exceeded.Store(true)
		return fmt.Errorf("write repository storage: more than %d bytes: %w", b.max, ErrLimitExceeded)
	}
	return nil
}

// budgetFS is a billy.Filesystem whose file writes draw on a writeBudget,
// so an oversized pack fails while it streams in.
type budgetFS struct {
	billy.Filesystem
	budget *writeBudget
}

func (f *budgetFS) Create(name string) (billy.File, error) {
	file, err := f.Filesystem.Create(name)
	return f.wrap(file, err)
}

func (f *budgetFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	file, err := f.Filesystem.OpenFile(name, flag, perm)
	return f.wrap(file, err)
}

func (f *budgetFS) TempFile(dir, prefix string) (billy.File, error) {
	file, err := f.Filesystem.TempFile(dir, prefix)
	return f.wrap(file, err)
}

func (f *budgetFS) Chroot(path string) (billy.Filesystem, error) {
	sub, err := f.Filesystem.Chroot(path)
	if err != nil {
		return nil, err
	}
	return &budgetFS{Filesystem: sub, budget: f.budget}, nil
}

func (f *budgetFS) Capabilities() billy.Capability { return billy.Capabilities(f.Filesystem) }

func (f *budgetFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := f.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return nil
}

func (f *budgetFS) wrap(file billy.File, err error) (billy.File, error) {
	if err != nil {
		return nil, err
	}
	return &budgetFile{File: file, budget: f.budget}, nil
}

type budgetFile struct {
	billy.File
	budget *writeBudget
}

func (f *budgetFile) Write(p []byte) (int, error) {
	if err := f.budget.add(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
