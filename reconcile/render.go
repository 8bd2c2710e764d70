package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Rendered is one revision of a fleet repository rendered to YAML
// documents, each still knowing its source file and line.
type Rendered struct {
	// Kustomized is true when a kustomization was built.
	Kustomized bool
	// Files counts the files read.
	Files  int
	docs   []*document
	limits Limits // the render's, which Decode checks too
}

// Len returns the number of rendered documents.
func (r *Rendered) Len() int { return len(r.docs) }

// Render renders the fleet at path inside the repository root. path may
// be relative to root or absolute; it must stay inside root.
//
// When path holds a kustomization (kustomization.yaml, kustomization.yml
// or Kustomization) it is built with kustomize: plugins off, loading
// restricted to each kustomization's directory and, in all, to root;
// remote resources and bases are refused; symbolic links leaving root are
// refused. Otherwise every *.yaml and *.yml file under path is read,
// recursively, in lexical order (directories and files whose name starts
// with "." are skipped).
//
// A YAML syntax error is returned as an ErrorList naming file and line.
// Exceeding a limit fails with ErrLimitExceeded.
func Render(ctx context.Context, root, path string, opts ...Option) (*Rendered, error) {
	o := newOptions(opts)
	r, err := newRootFS(root, o.limits)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.root, path)
	}
	dir, err := r.resolve(path)
	if err != nil {
		return nil, fmt.Errorf("render fleet path %s: %w", path, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("render: fleet path %s is not a directory", r.rel(dir))
	}

	ctx, cancel := context.WithTimeout(ctx, o.limits.Timeout)
	defer cancel()
	type result struct {
		docs  []*document
		files int
		err   error
	}
	done := make(chan result, 1)
	kust := findKustomization(dir)
	go func() {
		var res result
		if kust != "" {
			res.docs, res.files, res.err = buildKustomization(ctx, r, dir, kust)
		} else {
			res.docs, res.err = readPlain(ctx, r, dir)
			r.mu.Lock()
			res.files = r.files
			r.mu.Unlock()
		}
		done <- res
	}()
	select {
	case res := <-done:
		if errors.Is(res.err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("render %s: took longer than %s: %w", r.rel(dir), o.limits.Timeout, ErrLimitExceeded)
		}
		if res.err != nil {
			return nil, res.err
		}
		return &Rendered{Kustomized: kust != "", Files: res.files, docs: res.docs, limits: o.limits}, nil
	case <-ctx.Done():
		r.stopped.Store(true) // the build goroutine fails at its next read
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("render %s: took longer than %s: %w", r.rel(dir), o.limits.Timeout, ErrLimitExceeded)
		}
		return nil, fmt.Errorf("render %s: %w", r.rel(dir), ctx.Err())
	}
}

// readPlain reads every YAML file under dir. Symbolic links are followed
// while they stay inside the root; a directory is visited once.
func readPlain(ctx context.Context, r *rootFS, dir string) ([]*document, error) {
	var docs []*document
	var errs ErrorList
	visited := map[string]bool{} // directories and files, by resolved path
	var walk func(real string) error
	walk = func(real string) error {
		if visited[real] {
			return nil
		}
		visited[real] = true
		entries, err := os.ReadDir(real)
		if err != nil {
			return fmt.Errorf("render: %w", err)
		}
		// os.ReadDir sorts by name.
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			p := filepath.Join(real, name)
			isDir := e.IsDir()
			if e.Type()&os.ModeSymlink != 0 {
				target, err := r.resolve(p)
				if err != nil {
					return fmt.Errorf("render: symbolic link %s: %w", r.rel(p), err)
				}
				fi, err := os.Stat(target)
				if err != nil {
					return fmt.Errorf("render: symbolic link %s: %w", r.rel(p), err)
				}
				p, isDir = target, fi.IsDir()
			} else if !isDir && !e.Type().IsRegular() {
				continue
			}
			if isDir {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			switch strings.ToLower(filepath.Ext(name)) {
			case ".yaml", ".yml":
			default:
				continue
			}
			if visited[p] { // reached again through a symbolic link
				continue
			}
			visited[p] = true
			nodes, err := r.parse(p)
			if err != nil {
				if fe, ok := err.(*FieldError); ok {
					errs = append(errs, fe)
					continue
				}
				return fmt.Errorf("render: %w", err)
			}
			file := r.rel(p)
			for _, n := range nodes {
				docs = append(docs, &document{file: file, line: n.Line, node: n, src: n})
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	return slices.Clip(docs), nil
}

// Option tunes Render and Load.
type Option func(*options)

type options struct {
	limits Limits
	mode   Mode
}

func newOptions(opts []Option) options {
	o := options{mode: ModeGit}
	for _, f := range opts {
		f(&o)
	}
	o.limits = o.limits.withDefaults()
	return o
}

// WithLimits sets the render limits; zero fields keep the defaults.
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithTimeout sets only the render time limit.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.limits.Timeout = d } }

// WithMode sets the source mode (default ModeGit), which decides whether
// credentials may be a path.
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }
