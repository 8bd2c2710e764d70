package gitsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// FuzzCheckoutTree checks out a tree of a symbolic link (name -> target)
// followed by a file under a second name, both chosen by the fuzzer, as a
// crafted repository would hold them: whatever the names, nothing may be
// written outside the checkout.
func FuzzCheckoutTree(f *testing.F) {
	f.Add("l", "../outside", "l/evil.yaml")
	f.Add("l", "/tmp", "l/evil.yaml")
	f.Add("a/l", "..", "a/l/x")
	f.Add("l", ".", "l/../../x")
	f.Add("l", "sub", "l/ok.yaml")
	f.Add(".git", "hooks", ".git/hooks/post-checkout")
	f.Fuzz(func(t *testing.T, link, target, file string) {
		// The checkout is base/x/y/checkout; an absolute target points
		// into base/outside, so that every escape lands inside base.
		base := t.TempDir()
		dir := filepath.Join(base, "x", "y", "checkout")
		if err := os.MkdirAll(filepath.Join(base, "outside"), 0o755); err != nil {
			t.Fatal(err)
		}
		if filepath.IsAbs(target) {
			target = filepath.Join(base, "outside", target)
		}
		st := memory.NewStorage()
		blob := func(content string) plumbing.Hash {
			o := st.NewEncodedObject()
			o.SetType(plumbing.BlobObject)
			w, err := o.Writer()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write([]byte(content))
			_ = w.Close()
			h, err := st.SetEncodedObject(o)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		// One flat tree: a hand-made tree object may hold names with
		// slashes, and go-git walks them as paths.
		tree := &object.Tree{Entries: []object.TreeEntry{
			{Name: link, Mode: filemode.Symlink, Hash: blob(target)},
			{Name: file, Mode: filemode.Regular, Hash: blob("owned\n")},
		}}
		o := st.NewEncodedObject()
		if err := tree.Encode(o); err != nil {
			return
		}
		h, err := st.SetEncodedObject(o)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := object.GetTree(st, h)
		if err != nil {
			return
		}
		_ = checkoutTree(tr, dir, Limits{}.withDefaults())
		allowed := map[string]bool{"outside": true, "x": true, filepath.Join("x", "y"): true}
		err = filepath.WalkDir(base, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			if rel != "." && !allowed[rel] && rel != filepath.Join("x", "y", "checkout") &&
				!strings.HasPrefix(rel, filepath.Join("x", "y", "checkout")+string(filepath.Separator)) {
				t.Errorf("link %q -> %q, file %q: wrote %s outside the checkout", link, target, file, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
