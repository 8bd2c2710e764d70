package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/atoll-dev/atoll/test/gitserver"
)

func fetchCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newHTTPSource(t *testing.T, srv *gitserver.Server, mod func(*GitConfig)) *GitSource {
	t.Helper()
	cfg := GitConfig{
		URL:               srv.URL + "/fleet.git",
		CacheDir:          t.TempDir(),
		Username:          "atoll",
		Password:          "s3cret",
		CABundle:          srv.CAPEM,
		AllowInsecureHTTP: srv.CAPEM == nil,
		Timeout:           30 * time.Second,
		Logger:            testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewGitSource(cfg)
	if err != nil {
		t.Fatalf("NewGitSource: %v", err)
	}
	return s
}

// errAny in a test table accepts any non-nil error.
var errAny = errors.New("any error")

func TestGitSourceCloneOverHTTP(t *testing.T) {
	tests := []struct {
		name    string
		tls     bool
		pass    string // password the source presents
		noCA    bool   // do not give the source the server's CA
		wantErr error
	}{
		{name: "basic auth", pass: "s3cret"},
		{name: "TLS with generated CA", tls: true, pass: "s3cret"},
		{name: "TLS without the CA", tls: true, pass: "s3cret", noCA: true, wantErr: errAny},
		{name: "wrong password", pass: "wrong", wantErr: ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			sha := f.Commit(map[string]string{"clusters/a.yaml": "name: a\n", "kustomization.yaml": "resources: []\n"}, "add cluster a")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{Username: "atoll", Password: "s3cret", TLS: tt.tls})
			src := newHTTPSource(t, srv, func(c *GitConfig) {
				c.Password = tt.pass
				if tt.noCA {
					c.CABundle = nil
				}
			})

			snap, err := src.Fetch(fetchCtx(t))
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Fetch error = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr != errAny && !IsTerminal(err) {
					t.Errorf("IsTerminal(%v) = false", err)
				}
				if n := srv.UploadPacks(); n != 0 {
					t.Errorf("upload-pack requests = %d, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if snap.Revision != sha {
				t.Errorf("Revision = %s, want %s", snap.Revision, sha)
			}
			if got := readFile(t, filepath.Join(snap.Dir, "clusters/a.yaml")); got != "name: a\n" {
				t.Errorf("clusters/a.yaml = %q", got)
			}
			if snap.Message != "add cluster a\n" || snap.Author != "Ada Author <ada@example.com>" || snap.Time.IsZero() {
				t.Errorf("head info = %q %q %v", snap.Message, snap.Author, snap.Time)
			}
			if snap.Ref != "refs/heads/main" || snap.Base != "" || len(snap.Commits) != 1 || snap.Commits[0].Hash != sha {
				t.Errorf("range = ref %q base %q commits %+v", snap.Ref, snap.Base, snap.Commits)
			}
			if n := srv.UploadPacks(); n != 1 {
				t.Errorf("upload-pack requests = %d, want 1", n)
			}
			if _, err := os.Stat(filepath.Join(snap.Dir, ".git")); !os.IsNotExist(err) {
				t.Errorf("checkout contains .git: %v", err)
			}
		})
	}
}

// TestGitSourceUnchangedHead shows that a poll with an unchanged head costs
// one ref advertisement and no upload-pack request, i.e. zero objects.
func TestGitSourceUnchangedHead(t *testing.T) {
	f := gitserver.NewRepo(t)
	first := f.Commit(map[string]string{"a.yaml": "a: 1\n"}, "one")
	f.Push("main")
	srv := gitserver.Start(t, f.Root, gitserver.Options{Username: "atoll", Password: "s3cret"})
	src := newHTTPSource(t, srv, nil)
	ctx := fetchCtx(t)

	snap1, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	packs, refs := srv.UploadPacks(), srv.InfoRefs()
	for i := range 3 {
		snap, err := src.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Revision != first || snap.Dir != snap1.Dir {
			t.Fatalf("poll %d: snapshot changed: %+v", i, snap)
		}
	}
	if got := srv.UploadPacks() - packs; got != 0 {
		t.Errorf("upload-pack requests for unchanged head = %d, want 0", got)
	}
	if got := srv.InfoRefs() - refs; got != 3 {
		t.Errorf("ref advertisements = %d, want 3 (one per poll)", got)
	}

	// A new commit is fetched with exactly one upload-pack request, and
	// the range lists just it.
	second := f.Commit(map[string]string{"a.yaml": "a: 2\n"}, "two")
	f.Push("main")
	snap2, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Revision != second || snap2.Base != first || len(snap2.Commits) != 1 || snap2.Commits[0].Hash != second || snap2.Partial {
		t.Errorf("after push: %+v", snap2)
	}
	if got := srv.UploadPacks() - packs; got != 1 {
		t.Errorf("upload-pack requests after push = %d, want 1", got)
	}
	if got := readFile(t, filepath.Join(snap2.Dir, "a.yaml")); got != "a: 2\n" {
		t.Errorf("a.yaml = %q", got)
	}
	// The previous snapshot's directory is still there and unchanged.
	if got := readFile(t, filepath.Join(snap1.Dir, "a.yaml")); got != "a: 1\n" {
		t.Errorf("previous a.yaml = %q", got)
	}
}

func TestGitSourceHistory(t *testing.T) {
	f := gitserver.NewRepo(t)
	a := f.Commit(map[string]string{"a.yaml": "v: a\n"}, "A")
	b := f.Commit(map[string]string{"a.yaml": "v: b\n"}, "B")
	f.Push("main")
	srv := gitserver.Start(t, f.Root, gitserver.Options{})
	src := newHTTPSource(t, srv, func(c *GitConfig) { c.Username, c.Password = "", "" })
	ctx := fetchCtx(t)
	mustFetch := func(t *testing.T, want string) Snapshot {
		t.Helper()
		snap, err := src.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if snap.Revision != want {
			t.Fatalf("Revision = %s, want %s", snap.Revision, want)
		}
		return snap
	}
	hashes := func(cs []Commit) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Hash)
		}
		return out
	}
	mustFetch(t, b)

	t.Run("fast-forward of several commits", func(t *testing.T) {
		c := f.Commit(map[string]string{"c.yaml": "c\n"}, "C")
		d := f.Commit(map[string]string{"d.yaml": "d\n"}, "D")
		f.Push("main")
		snap := mustFetch(t, d)
		if got := strings.Join(hashes(snap.Commits), ","); got != d+","+c || snap.Base != b || snap.Partial {
			t.Errorf("commits = %s base %s partial %v, want %s,%s base %s", got, snap.Base, snap.Partial, d, c, b)
		}
	})

	t.Run("force-push rewrites the head", func(t *testing.T) {
		f.Git(f.Work, "reset", "-q", "--hard", b)
		e := f.Commit(map[string]string{"e.yaml": "e\n"}, "E")
		f.Push("--force", "main")
		snap := mustFetch(t, e)
		if got := strings.Join(hashes(snap.Commits), ","); got != e {
			t.Errorf("commits = %s, want %s", got, e)
		}
		if _, err := os.Stat(filepath.Join(snap.Dir, "d.yaml")); !os.IsNotExist(err) {
			t.Errorf("d.yaml from the discarded history is still checked out")
		}
	})

	t.Run("force-push back to an ancestor", func(t *testing.T) {
		f.Git(f.Work, "reset", "-q", "--hard", a)
		f.Push("--force", "main")
		snap := mustFetch(t, a)
		if len(snap.Commits) != 0 {
			t.Errorf("commits = %v, want none", hashes(snap.Commits))
		}
		if got := readFile(t, filepath.Join(snap.Dir, "a.yaml")); got != "v: a\n" {
			t.Errorf("a.yaml = %q", got)
		}
	})

	t.Run("branch deletion keeps the previous snapshot", func(t *testing.T) {
		f.Push("main:other")
		f.Git(f.Bare, "update-ref", "-d", "refs/heads/main")
		_, err := src.Fetch(ctx)
		if !errors.Is(err, ErrRefDeleted) || !errors.Is(err, ErrRefNotFound) || !IsTerminal(err) {
			t.Fatalf("Fetch after deletion = %v, want ErrRefDeleted", err)
		}
		f.Git(f.Bare, "update-ref", "-d", "refs/heads/other")
		if _, err := src.Fetch(ctx); !errors.Is(err, ErrRefDeleted) {
			t.Fatalf("Fetch from an empty repository = %v, want ErrRefDeleted", err)
		}
		g := f.Commit(map[string]string{"g.yaml": "g\n"}, "G")
		f.Push("main")
		snap := mustFetch(t, g)
		if snap.Base != a || strings.Join(hashes(snap.Commits), ",") != g {
			t.Errorf("after the branch came back: base %s commits %v, want base %s commits [%s]", snap.Base, hashes(snap.Commits), a, g)
		}
	})
}

func TestGitSourceRefs(t *testing.T) {
	f := gitserver.NewRepo(t)
	a := f.Commit(map[string]string{"a.yaml": "v: a\n"}, "A")
	f.Git(f.Work, "tag", "-a", "-m", "release 1", "v1")
	f.Git(f.Work, "tag", "light", a)
	b := f.Commit(map[string]string{"a.yaml": "v: b\n"}, "B")
	f.Push("main", "v1", "light")
	srv := gitserver.Start(t, f.Root, gitserver.Options{})

	tests := []struct {
		name    string
		ref     Ref
		want    string
		wantErr error
	}{
		{name: "default branch", want: b},
		{name: "annotated tag", ref: Ref{Tag: "v1"}, want: a},
		{name: "lightweight tag", ref: Ref{Tag: "light"}, want: a},
		{name: "commit SHA", ref: Ref{Commit: a}, want: a},
		{name: "missing branch", ref: Ref{Branch: "nope"}, wantErr: ErrRefNotFound},
		{name: "missing tag", ref: Ref{Tag: "v9"}, wantErr: ErrRefNotFound},
		{name: "unknown SHA", ref: Ref{Commit: strings.Repeat("ab", 20)}, wantErr: ErrRefNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newHTTPSource(t, srv, func(c *GitConfig) { c.Ref = tt.ref; c.Username, c.Password = "", "" })
			ctx := fetchCtx(t)
			snap, err := src.Fetch(ctx)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != tt.want {
				t.Errorf("Revision = %s, want %s", snap.Revision, tt.want)
			}
			if tt.ref.Commit != "" {
				// A pinned commit never changes: the second Fetch makes
				// no request at all.
				refs, packs := srv.InfoRefs(), srv.UploadPacks()
				if _, err := src.Fetch(ctx); err != nil {
					t.Fatal(err)
				}
				if srv.InfoRefs() != refs || srv.UploadPacks() != packs {
					t.Errorf("second Fetch of a pinned commit made requests")
				}
			}
		})
	}
}

func TestGitSourceCommitRange(t *testing.T) {
	tests := []struct {
		name        string
		newCommits  int
		maxCommits  int
		wantCommits int
		wantPartial bool
	}{
		{name: "one commit", newCommits: 1, wantCommits: 1},
		{name: "ten commits after a shallow clone", newCommits: 10, wantCommits: 10},
		{name: "more than MaxCommits", newCommits: 6, maxCommits: 4, wantCommits: 4, wantPartial: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			for i := range 5 {
				f.Commit(map[string]string{"old.yaml": fmt.Sprint(i)}, "old")
			}
			base := f.Commit(map[string]string{"a.yaml": "base\n"}, "base")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{})
			src := newHTTPSource(t, srv, func(c *GitConfig) {
				c.Username, c.Password = "", ""
				c.Limits.MaxCommits = tt.maxCommits
			})
			ctx := fetchCtx(t)
			if _, err := src.Fetch(ctx); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range tt.newCommits {
				want = append([]string{f.Commit(map[string]string{"a.yaml": fmt.Sprint(i)}, "new")}, want...)
			}
			f.Push("main")
			snap, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range snap.Commits {
				got = append(got, c.Hash)
			}
			if strings.Join(got, ",") != strings.Join(want[:tt.wantCommits], ",") || snap.Partial != tt.wantPartial || snap.Base != base {
				t.Errorf("commits %v partial %v base %s; want %v partial %v base %s", got, snap.Partial, snap.Base, want[:tt.wantCommits], tt.wantPartial, base)
			}
		})
	}
}

// TestGitSourceRestart: a new source told the revision applied before
// lists the commits since then, with the old cache or a fresh one.
func TestGitSourceRestart(t *testing.T) {
	tests := []struct {
		name       string
		freshCache bool
	}{
		{name: "same cache"},
		{name: "fresh cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			a := f.Commit(map[string]string{"a.yaml": "a\n"}, "A")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{})
			cache := t.TempDir()
			if _, err := newHTTPSource(t, srv, func(c *GitConfig) { c.Username, c.Password, c.CacheDir = "", "", cache }).Fetch(fetchCtx(t)); err != nil {
				t.Fatal(err)
			}
			b := f.Commit(map[string]string{"a.yaml": "b\n"}, "B")
			c := f.Commit(map[string]string{"a.yaml": "c\n"}, "C")
			f.Push("main")
			if tt.freshCache {
				cache = t.TempDir()
			}
			snap, err := newHTTPSource(t, srv, func(cfg *GitConfig) {
				cfg.Username, cfg.Password, cfg.CacheDir, cfg.LastApplied = "", "", cache, a
			}).Fetch(fetchCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != c || snap.Base != a || len(snap.Commits) != 2 || snap.Commits[0].Hash != c || snap.Commits[1].Hash != b || snap.Partial {
				t.Errorf("after restart: %+v", snap)
			}
		})
	}
}

func TestGitSourceRunPolls(t *testing.T) {
	f := gitserver.NewRepo(t)
	f.Commit(map[string]string{"a.yaml": "a\n"}, "A")
	f.Push("main")
	srv := gitserver.Start(t, f.Root, gitserver.Options{})
	src := newHTTPSource(t, srv, func(c *GitConfig) { c.PollInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	for i := range 3 {
		waitSignal(t, src.Changes(), fmt.Sprintf("poll %d", i))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestGitSourceCompaction: packs from many fetches are compacted into one,
// orphaned history is dropped, and ranges stay right across it.
func TestGitSourceCompaction(t *testing.T) {
	old := compactAfterPacks
	compactAfterPacks = 2
	t.Cleanup(func() { compactAfterPacks = old })

	f := gitserver.NewRepo(t)
	f.Commit(map[string]string{"a.yaml": "0\n"}, "zero")
	f.Push("main")
	srv := gitserver.Start(t, f.Root, gitserver.Options{})
	src := newHTTPSource(t, srv, func(c *GitConfig) { c.Username, c.Password = "", "" })
	ctx := fetchCtx(t)
	prev, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var orphan string
	for i := 1; i <= 6; i++ {
		if i == 4 {
			// Force-push away the last commit.
			orphan = prev.Revision
			f.Git(f.Work, "reset", "-q", "--hard", "HEAD~1")
		}
		want := f.Commit(map[string]string{"a.yaml": fmt.Sprintf("%d\n", i)}, fmt.Sprint(i))
		f.Push("--force", "main")
		snap, err := src.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if snap.Revision != want || snap.Base != prev.Revision || len(snap.Commits) != 1 || snap.Partial {
			t.Fatalf("fetch %d: revision %s base %s commits %d partial %v; want %s base %s", i, snap.Revision, snap.Base, len(snap.Commits), snap.Partial, want, prev.Revision)
		}
		if got := readFile(t, filepath.Join(snap.Dir, "a.yaml")); got != fmt.Sprintf("%d\n", i) {
			t.Fatalf("fetch %d: a.yaml = %q", i, got)
		}
		if n := countPacks(src.repoDir); n > compactAfterPacks {
			t.Fatalf("fetch %d: %d packs, want at most %d", i, n, compactAfterPacks)
		}
		prev = snap
	}
	repo, err := src.openRepo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CommitObject(plumbing.NewHash(orphan)); !errors.Is(err, plumbing.ErrObjectNotFound) {
		t.Errorf("orphaned commit %s survived compaction: %v", orphan, err)
	}
}
