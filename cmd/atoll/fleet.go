package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/atoll-dev/atoll/reconcile"
)

// parseSourceMode checks a --mode flag value.
func parseSourceMode(s string) (reconcile.Mode, error) {
	switch m := reconcile.Mode(s); m {
	case reconcile.ModeGit, reconcile.ModeWatch:
		return m, nil
	default:
		return "", fmt.Errorf("unsupported --mode %q: want git or watch", s)
	}
}

// findFleetRoot returns the repository root for a fleet directory: the closest
// ancestor (or dir itself) holding a .git entry, else dir itself.
func findFleetRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return abs, nil
		}
		d = parent
	}
}

// loadFleet loads the fleet at path inside root; root "" means findFleetRoot.
func loadFleet(ctx context.Context, root, path string, mode reconcile.Mode) (*reconcile.Fleet, []reconcile.NodeSpec, error) {
	if root == "" {
		var err error
		if root, err = findFleetRoot(path); err != nil {
			return nil, nil, err
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	return reconcile.Load(ctx, root, abs, reconcile.WithMode(mode))
}

// printProblems writes one "file:line: field: message" line per problem of
// an ErrorList, each prefixed with prefix, and reports whether err was one.
func printProblems(w io.Writer, prefix string, err error) bool {
	var list reconcile.ErrorList
	if !errors.As(err, &list) {
		return false
	}
	for _, e := range list {
		fmt.Fprintf(w, "%s%s\n", prefix, e)
	}
	return true
}
