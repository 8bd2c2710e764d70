package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// maxCheckoutBytes bounds what checkoutRevision writes.
const maxCheckoutBytes = 256 << 20

// checkoutRevision writes the tree of rev in the git repository repo to a
// new temporary directory (git archive; the repository is only read) and
// returns it with the commit message. cleanup removes the directory.
func checkoutRevision(ctx context.Context, repo, rev string) (dir, message string, cleanup func(), err error) {
	commit, err := gitOutput(ctx, repo, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", "", nil, fmt.Errorf("resolve revision %q in %s: %w", rev, repo, err)
	}
	commit = strings.TrimSpace(commit)
	message, err = gitOutput(ctx, repo, "log", "-1", "--format=%B", commit)
	if err != nil {
		return "", "", nil, fmt.Errorf("read commit message of %s: %w", commit, err)
	}
	dir, err = os.MkdirTemp("", "atoll-plan-")
	if err != nil {
		return "", "", nil, fmt.Errorf("checkout %s: %w", rev, err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("checkout %s: %w", rev, err)
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("checkout %s: %w", rev, err)
	}
	xerr := extractTar(stdout, dir)
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	if err := errors.Join(xerr, werr); err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("checkout %s: %w: %s", rev, err, strings.TrimSpace(stderr.String()))
	}
	return dir, message, cleanup, nil
}

func gitOutput(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// extractTar writes a git archive into dir. Entries must stay inside dir;
// symbolic links are written as they are (the renderer refuses those that
// leave the root).
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive entry %q leaves the checkout", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > maxCheckoutBytes {
				return fmt.Errorf("checkout larger than %d bytes", maxCheckoutBytes)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}
