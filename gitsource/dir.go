package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a DirSource waits after the last file event
// before it looks at the tree.
const DefaultDebounce = 300 * time.Millisecond

// DirConfig configures a DirSource. Dir is required.
type DirConfig struct {
	// Dir is the root of the fleet declarations; it must exist.
	Dir string
	// Debounce after the last file event; default DefaultDebounce.
	Debounce time.Duration
	// Limits; MaxFiles and MaxBytes apply.
	Limits Limits
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DirSource follows a local directory tree for watch mode. Its Revision is
// a hash of the tree's content (paths, file contents, executable bits,
// symlink targets), so saving a file unchanged produces no new revision.
// Version-control directories (.git) and editor scratch files (*~, *.swp,
// *.swx, .#*, 4913) are ignored.
type DirSource struct {
	cfg     DirConfig
	root    string
	log     *slog.Logger
	changes notifier
	ready   chan struct{}
	once    sync.Once

	mu      sync.Mutex
	lastRev string // last revision hashed by Fetch or the watcher

	emitted atomic.Int64 // change signals sent by the watcher (for tests)
}

// NewDirSource validates cfg. It does not start watching; call Run.
func NewDirSource(cfg DirConfig) (*DirSource, error) {
	if cfg.Dir == "" {
		return nil, invalidConfig("Dir is required")
	}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, invalidConfig("resolve Dir %s: %v", cfg.Dir, err)
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, invalidConfig("stat Dir: %v", err)
	}
	if !info.IsDir() {
		return nil, invalidConfig("Dir %s is not a directory", root)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &DirSource{
		cfg:     cfg,
		root:    root,
		log:     cfg.Logger.With("source", "dir", "dir", root),
		changes: newNotifier(),
		ready:   make(chan struct{}),
	}, nil
}

// Changes delivers a signal once when Run is watching and then whenever
// the tree's content hash differs from the last one seen, after Debounce
// of quiet. Signals coalesce.
func (d *DirSource) Changes() <-chan struct{} { return d.changes.C() }

// Ready is closed once Run watches the whole tree.
func (d *DirSource) Ready() <-chan struct{} { return d.ready }

// Fetch hashes the tree and returns it as a snapshot whose Dir is the
// watched directory itself (not a copy).
func (d *DirSource) Fetch(ctx context.Context) (Snapshot, error) {
	rev, err := d.hash(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	d.mu.Lock()
	d.lastRev = rev
	d.mu.Unlock()
	return Snapshot{Revision: rev, Dir: d.root}, nil
}

// Run watches the tree (sub-directories created later included) until ctx
// is cancelled, then returns nil. It returns an error if the watch cannot
// be set up.
func (d *DirSource) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.root, err)
	}
	defer w.Close()
	if err := d.watchTree(w, d.root); err != nil {
		return err
	}
	if rev, err := d.hash(ctx); err == nil {
		d.mu.Lock()
		if d.lastRev == "" {
			d.lastRev = rev
		}
		d.mu.Unlock()
	}
	d.once.Do(func() { close(d.ready) })
	d.changes.notify()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", d.root)
			}
			if ignored(filepath.Base(ev.Name)) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() {
					if err := d.watchTree(w, ev.Name); err != nil {
						d.log.Warn("watch new directory failed", "path", ev.Name, "err", err)
					}
				}
			}
			timer.Reset(d.cfg.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", d.root)
			}
			// An overflow loses events: look at the tree anyway.
			d.log.Warn("watch error", "err", err)
			timer.Reset(d.cfg.Debounce)
		case <-timer.C:
			d.settle(ctx)
		}
	}
}

// settle hashes the tree after the debounce and signals if it changed.
func (d *DirSource) settle(ctx context.Context) {
	rev, err := d.hash(ctx)
	if err != nil {
		// Let Fetch report it to the consumer.
		d.log.Warn("hash tree failed", "err", err)
		d.emitted.Add(1)
		d.changes.notify()
		return
	}
	d.mu.Lock()
	changed := rev != d.lastRev
	d.lastRev = rev
	d.mu.Unlock()
	if changed {
		d.log.Debug("tree changed", "revision", rev)
		d.emitted.Add(1)
		d.changes.notify()
	}
}

// watchTree adds dir and every directory below it to w.
func (d *DirSource) watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != d.root {
				return nil // removed while walking
			}
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if !e.IsDir() {
			return nil
		}
		if p != d.root && ignored(e.Name()) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// hash returns "sha256:<hex>" over the tree's paths and contents.
func (d *DirSource) hash(ctx context.Context) (string, error) {
	h := sha256.New()
	var files int
	var size int64
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != d.root {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == d.root {
			return nil
		}
		if ignored(e.Name()) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case e.IsDir():
			return nil
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil // removed meanwhile
			}
			fmt.Fprintf(h, "l %s\x00%s\x00", rel, target)
			return nil
		case !e.Type().IsRegular():
			return nil
		}
		files++
		if files > d.cfg.Limits.MaxFiles {
			return fmt.Errorf("more than %d files (Limits.MaxFiles): %w", d.cfg.Limits.MaxFiles, ErrLimitExceeded)
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		fh := sha256.New()
		n, err := io.Copy(fh, io.LimitReader(f, d.cfg.Limits.MaxBytes-size+1))
		if err != nil {
			return err
		}
		size += n
		if size > d.cfg.Limits.MaxBytes {
			return fmt.Errorf("more than %d bytes of files (Limits.MaxBytes): %w", d.cfg.Limits.MaxBytes, ErrLimitExceeded)
		}
		mode := "f"
		if info.Mode()&0o111 != 0 {
			mode = "x"
		}
		fmt.Fprintf(h, "%s %s\x00%x\x00", mode, rel, fh.Sum(nil))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", d.root, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ignored reports whether a file or directory name is left out of
// watching and hashing.
func ignored(name string) bool {
	switch {
	case name == ".git", name == "4913",
		strings.HasPrefix(name, ".#"),
		strings.HasSuffix(name, "~"),
		strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".swx"), strings.HasSuffix(name, ".swo"):
		return true
	}
	return false
}
