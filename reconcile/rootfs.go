package reconcile

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	yaml "go.yaml.in/yaml/v3"
)

// rootFS reads files confined to a repository root, counting them against
// the render limits. Every path is checked after resolving symbolic links;
// a path that leaves the root is refused with ErrOutsideRoot. Parsed YAML
// is cached by file so that line numbers can be looked up later.
type rootFS struct {
	root   string // absolute, symbolic links resolved
	limits Limits

	stopped atomic.Bool // set when the render is abandoned (timeout)

	mu       sync.Mutex
	resolved map[string]resolved // by path as asked
	files    int
	bytes    int64
	read     map[string][]byte // by resolved absolute path
	parsed   map[string][]*yaml.Node
}

func newRootFS(root string, limits Limits) (*rootFS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", root, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s is not a directory", root)
	}
	return &rootFS{root: real, limits: limits, read: map[string][]byte{}, parsed: map[string][]*yaml.Node{}, resolved: map[string]resolved{}}, nil
}

// within reports whether the absolute, cleaned path p is the root or below it.
func (r *rootFS) within(p string) bool {
	return p == r.root || strings.HasPrefix(p, r.root+string(filepath.Separator))
}

// resolve returns p as an absolute path with symbolic links resolved, and
// fails with ErrOutsideRoot when it leaves the root. A path that does not
// exist is checked lexically (its existing parent is resolved).
func (r *rootFS) resolve(p string) (string, error) {
	r.mu.Lock()
	res, ok := r.resolved[p]
	r.mu.Unlock()
	if !ok {
		res.real, res.err = r.resolveUncached(p)
		r.mu.Lock()
		r.resolved[p] = res
		r.mu.Unlock()
	}
	return res.real, res.err
}

// resolved caches resolve: a render sees one state of the files.
type resolved struct {
	real string
	err  error
}

func (r *rootFS) resolveUncached(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		// Not there (yet): resolve the parent so a link in it still counts.
		dir, base := filepath.Split(abs)
		if pd, perr := filepath.EvalSymlinks(dir); perr == nil {
			real = filepath.Join(pd, base)
		} else {
			real = filepath.Clean(abs)
		}
	}
	if !r.within(real) {
		return "", fmt.Errorf("%s: %w", r.display(abs), ErrOutsideRoot)
	}
	return real, nil
}

// rel returns the slash-separated path of a resolved path relative to root.
func (r *rootFS) rel(real string) string {
	rel, err := filepath.Rel(r.root, real)
	if err != nil {
		return filepath.ToSlash(real)
	}
	return filepath.ToSlash(rel)
}

// display names a path for messages: relative to root when inside.
func (r *rootFS) display(abs string) string {
	if r.within(abs) {
		return r.rel(abs)
	}
	return abs
}

// readFile reads a resolved path, enforcing limits; a file read twice is
// counted once.
func (r *rootFS) readFile(real string) ([]byte, error) {
	if r.stopped.Load() {
		return nil, fmt.Errorf("read %s: render abandoned: %w", r.rel(real), ErrLimitExceeded)
	}
	r.mu.Lock()
	if b, ok := r.read[real]; ok {
		r.mu.Unlock()
		return b, nil
	}
	r.mu.Unlock()
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("read %s: is a directory", r.rel(real))
	}
	if fi.Size() > r.limits.MaxFileBytes {
		return nil, fmt.Errorf("read %s: %d bytes, more than the limit of %d per file: %w", r.rel(real), fi.Size(), r.limits.MaxFileBytes, ErrLimitExceeded)
	}
	r.mu.Lock()
	r.files++
	r.bytes += fi.Size()
	files, bytes := r.files, r.bytes
	r.mu.Unlock()
	if files > r.limits.MaxFiles {
		return nil, fmt.Errorf("read %s: more than %d files: %w", r.rel(real), r.limits.MaxFiles, ErrLimitExceeded)
	}
	if bytes > r.limits.MaxBytes {
		return nil, fmt.Errorf("read %s: more than %d bytes in all: %w", r.rel(real), r.limits.MaxBytes, ErrLimitExceeded)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > r.limits.MaxFileBytes { // grew since Stat
		return nil, fmt.Errorf("read %s: more than the limit of %d bytes per file: %w", r.rel(real), r.limits.MaxFileBytes, ErrLimitExceeded)
	}
	r.mu.Lock()
	r.read[real] = b
	r.mu.Unlock()
	return b, nil
}

// parse returns the YAML documents of a resolved path, reading and
// parsing it once.
func (r *rootFS) parse(real string) ([]*yaml.Node, error) {
	r.mu.Lock()
	if n, ok := r.parsed[real]; ok {
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	b, err := r.readFile(real)
	if err != nil {
		return nil, err
	}
	nodes, err := parseYAML(r.rel(real), b)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.parsed[real] = nodes
	r.mu.Unlock()
	return nodes, nil
}

// syntaxErrors parses every YAML file read so far (except
// kustomizations) and returns their syntax errors, by file.
func (r *rootFS) syntaxErrors() ErrorList {
	r.mu.Lock()
	paths := slices.Sorted(maps.Keys(r.read))
	r.mu.Unlock()
	var errs ErrorList
	for _, p := range paths {
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml":
		default:
			continue
		}
		if slices.Contains(kustomizationNames, filepath.Base(p)) {
			continue
		}
		if _, err := r.parse(p); err != nil {
			if fe, ok := err.(*FieldError); ok {
				errs = append(errs, fe)
			}
		}
	}
	return errs
}
