package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Defaults for GitConfig.
const (
	DefaultPollInterval = time.Minute
	DefaultTimeout      = 2 * time.Minute
	DefaultBranch       = "main"
)

// localRef is where fetched heads are stored in the cache repository.
const localRef = plumbing.ReferenceName("refs/atoll/head")

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Ref selects what to follow. Set exactly one field; the zero Ref follows
// branch DefaultBranch.
type Ref struct {
	Branch string // e.g. "main"
	Tag    string // e.g. "v1.2.0"; annotated tags are peeled to their commit
	Commit string // full 40-hex SHA; the server must allow fetching it by SHA
}

// GitConfig configures a GitSource. URL and CacheDir are required; other
// zero values take the documented defaults.
type GitConfig struct {
	// URL of the repository: https://host/path, ssh://[user@]host[:port]/path
	// or user@host:path. http:// needs AllowInsecureHTTP; file:// URLs and
	// local paths need AllowLocal; git:// is refused.
	URL string
	// Ref to follow.
	Ref Ref
	// CacheDir is a directory owned by Atoll where the repository and the
	// checked-out revisions are kept (created with mode 0700). Sources
	// with different URLs or refs may share it; one URL and ref must have
	// one GitSource per CacheDir.
	CacheDir string

	// Username and Password for HTTPS basic auth; for token auth put the
	// token in Password (any non-empty Username works with GitHub, GitLab
	// and Gitea).
	Username string
	Password string
	// CABundle is PEM; the system roots are used besides it.
	CABundle []byte
	// SSHPrivateKey is a PEM/OpenSSH private key, SSHPassphrase its
	// passphrase if encrypted.
	SSHPrivateKey []byte
	SSHPassphrase string
	// KnownHosts is the content of a known_hosts file. Required for SSH:
	// there is no trust-on-first-use; an unknown or mismatched host key
	// fails with ErrHostKey before anything is fetched.
	KnownHosts []byte

	// AllowInsecureHTTP permits http:// URLs (credentials travel in clear).
	AllowInsecureHTTP bool
	// AllowLocal permits file:// URLs and local paths (tests, demos).
	AllowLocal bool

	// Depth of the first fetch; 0 means 1 (shallow), -1 the full history.
	// Later fetches only transfer what is missing.
	Depth int
	// PollInterval between change signals from Run; default 1m.
	PollInterval time.Duration
	// Timeout for each network call (ls-remote, fetch); default 2m.
	Timeout time.Duration
	// Limits on repository size, files and commits.
	Limits Limits
	// Signatures, if not nil, must be satisfied by every commit in
	// Snapshot.Commits or Fetch refuses the revision.
	Signatures *SignaturePolicy
	// LastApplied is the revision applied before this process started. If
	// it is in the cache, the first snapshot's Commits start after it.
	LastApplied string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// GitSource follows one ref of a git repository. Fetch is safe for
// concurrent use (calls are serialized); Run, Changes and Trigger drive
// when to call it.
type GitSource struct {
	cfg      GitConfig
	log      *slog.Logger
	remote   *Remote
	verifier *verifier
	refName  plumbing.ReferenceName // remote ref; "" for Commit
	stateDir string
	repoDir  string
	treesDir string
	changes  notifier
	ready    chan struct{}
	readyOne sync.Once

	mu         sync.Mutex // serializes Fetch; guards the fields below
	repo       *git.Repository
	storage    *filesystem.Storage
	budget     *writeBudget
	last       *Snapshot
	lastRemote plumbing.Hash // hash the remote advertised for last
	prevDir    string        // Dir of the snapshot before last
}

// NewGitSource validates cfg and prepares the cache directory. It does not
// touch the network.
func NewGitSource(cfg GitConfig) (*GitSource, error) {
	if cfg.CacheDir == "" {
		return nil, invalidConfig("CacheDir is required")
	}
	var refName plumbing.ReferenceName
	var set int
	if cfg.Ref.Branch != "" {
		set++
		refName = plumbing.NewBranchReferenceName(cfg.Ref.Branch)
	}
	if cfg.Ref.Tag != "" {
		set++
		refName = plumbing.NewTagReferenceName(cfg.Ref.Tag)
	}
	if cfg.Ref.Commit != "" {
		set++
		if !fullSHA.MatchString(cfg.Ref.Commit) {
			return nil, invalidConfig("Ref.Commit %q is not a full lowercase 40-hex SHA", cfg.Ref.Commit)
		}
	}
	switch {
	case set > 1:
		return nil, invalidConfig("set only one of Ref.Branch, Ref.Tag and Ref.Commit")
	case set == 0:
		cfg.Ref.Branch = DefaultBranch
		refName = plumbing.NewBranchReferenceName(DefaultBranch)
	}
	if refName != "" {
		if err := refName.Validate(); err != nil {
			return nil, invalidConfig("ref %s: %v", refName, err)
		}
	}
	if cfg.LastApplied != "" && !fullSHA.MatchString(cfg.LastApplied) {
		return nil, invalidConfig("LastApplied %q is not a full SHA", cfg.LastApplied)
	}
	if cfg.Depth == 0 {
		cfg.Depth = 1
	}
	if cfg.Depth < -1 {
		return nil, invalidConfig("Depth %d: want -1 (full), 0 (default 1) or more", cfg.Depth)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	// One state directory per URL and ref.
	key := sha256.Sum256([]byte(cfg.URL + "\x00" + string(refName) + "\x00" + cfg.Ref.Commit))
	stateDir := filepath.Join(cfg.CacheDir, "git-"+hex.EncodeToString(key[:8]))
	for _, d := range []string{cfg.CacheDir, stateDir, filepath.Join(stateDir, "worktrees")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	r, err := NewRemote(cfg, stateDir)
	if err != nil {
		return nil, err
	}
	var v *verifier
	if cfg.Signatures != nil {
		if v, err = newVerifier(cfg.Signatures); err != nil {
			return nil, err
		}
	}
	return &GitSource{
		cfg:      cfg,
		log:      cfg.Logger.With("source", "git", "url", r.redacted, "ref", refLabel(cfg.Ref, refName)),
		remote:   r,
		verifier: v,
		refName:  refName,
		stateDir: stateDir,
		repoDir:  filepath.Join(stateDir, "repo"),
		treesDir: filepath.Join(stateDir, "worktrees"),
		changes:  newNotifier(),
		ready:    make(chan struct{}),
	}, nil
}

func refLabel(r Ref, name plumbing.ReferenceName) string {
	if r.Commit != "" {
		return r.Commit
	}
	return name.String()
}

// Changes delivers a signal whenever a Fetch may find something new: once
// when Run starts, every PollInterval, and on Trigger (webhook). Signals
// coalesce; a receiver that is busy misses none of the meaning.
func (s *GitSource) Changes() <-chan struct{} { return s.changes.C() }

// Trigger asks for a Fetch now (e.g. from a webhook). It never blocks.
func (s *GitSource) Trigger() { s.changes.notify() }

// Ready is closed once Run has started.
func (s *GitSource) Ready() <-chan struct{} { return s.ready }

// Run signals Changes every PollInterval until ctx is cancelled, then
// returns nil.
func (s *GitSource) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	s.readyOne.Do(func() { close(s.ready) })
	s.changes.notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.changes.notify()
		}
	}
}

// Fetch returns the snapshot of the ref's current head. It first asks the
// remote for the ref's head (ls-remote); if that is the head of the last
// snapshot, it returns that snapshot without fetching anything. Otherwise
// it fetches what is missing, lists the commits since the last snapshot,
// verifies their signatures if a policy is set, and checks the revision
// out into a fresh directory.
//
// On error the returned Snapshot is empty and the previous snapshot stays
// the base of the next Fetch. Errors wrap the package's sentinels; see
// IsTerminal.
func (s *GitSource) Fetch(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	advertised, err := s.resolve(ctx)
	if err != nil {
		if errors.Is(err, ErrRefNotFound) && s.last != nil {
			err = fmt.Errorf("%w (previous revision %s stays in force): %w", ErrRefDeleted, s.last.Revision, err)
		}
		s.log.Warn("resolve ref failed", "err", err)
		return Snapshot{}, err
	}
	if s.last != nil && advertised == s.lastRemote {
		s.log.Debug("head unchanged", "revision", s.last.Revision)
		return s.last.clone(), nil
	}

	repo, err := s.openRepo()
	if err != nil {
		return Snapshot{}, err
	}
	head, advertised, err := s.fetchHead(ctx, repo, advertised)
	if err != nil {
		s.log.Warn("fetch failed", "err", err)
		return Snapshot{}, err
	}

	snap, err := s.snapshot(ctx, repo, head)
	if err != nil {
		s.log.Warn("revision refused", "revision", head.Hash.String(), "err", err)
		return Snapshot{}, err
	}
	if s.last != nil {
		s.prevDir = s.last.Dir
	}
	s.last = &snap
	s.lastRemote = advertised
	s.pruneWorktrees()
	s.maintain(repo, head.Hash)
	s.log.Info("fetched revision", "revision", snap.Revision, "base", snap.Base, "commits", len(snap.Commits))
	return snap.clone(), nil
}

func (s Snapshot) clone() Snapshot {
	s.Commits = append([]Commit(nil), s.Commits...)
	return s
}

// snapshot lists and verifies the commits since the last snapshot and
// checks head out.
func (s *GitSource) snapshot(ctx context.Context, repo *git.Repository, head *object.Commit) (Snapshot, error) {
	base := s.cfg.LastApplied
	if s.last != nil {
		base = s.last.Revision
	}
	if base != "" && base != head.Hash.String() && repo.Storer.HasEncodedObject(plumbing.NewHash(base)) != nil {
		// After a restart with a fresh cache: fetch the base itself so the
		// range can reach it. Servers that refuse fetching by SHA leave
		// the range at the head only (Partial).
		if err := s.fetchSpec(ctx, repo, base, appliedRef, 1); err != nil {
			s.log.Warn("fetch last applied revision failed; listing the head only", "base", base, "err", err)
		}
	}
	rng, err := commitRange(repo, head, base, s.cfg.Limits.MaxCommits)
	// A shallow cache may end before the base: deepen step by step until
	// the range is complete or MaxCommits deep.
	for depth := 1; err == nil && rng.shallow && s.cfg.Depth != -1 && depth <= s.cfg.Limits.MaxCommits; {
		depth = min(depth*4, s.cfg.Limits.MaxCommits+1)
		if err = s.fetch(ctx, repo, depth); err == nil {
			rng, err = commitRange(repo, head, base, s.cfg.Limits.MaxCommits)
		}
	}
	if err != nil {
		return Snapshot{}, err
	}
	if s.verifier != nil && rng.partial && rng.base != "" {
		// Commits between the base and the listed ones would go unchecked.
		return Snapshot{}, &VerificationError{
			Commit: head.Hash.String(),
			Reason: fmt.Sprintf("cannot list all commits since %s (more than Limits.MaxCommits=%d, or history unavailable)", rng.base, s.cfg.Limits.MaxCommits),
			Err:    ErrUntrusted,
		}
	}
	commits := make([]Commit, 0, len(rng.commits))
	for _, c := range rng.commits {
		commit := commitInfo(c)
		if s.verifier != nil {
			signer, err := s.verifier.verify(c)
			if err != nil {
				return Snapshot{}, err
			}
			commit.Signer = signer
		}
		commits = append(commits, commit)
	}

	dir := filepath.Join(s.treesDir, head.Hash.String())
	if _, err := os.Stat(dir); err != nil {
		tree, err := head.Tree()
		if err != nil {
			return Snapshot{}, fmt.Errorf("read tree of %s: %w", head.Hash, err)
		}
		tmp, err := os.MkdirTemp(s.treesDir, ".tmp-")
		if err != nil {
			return Snapshot{}, fmt.Errorf("create worktree: %w", err)
		}
		if err := checkoutTree(tree, tmp, s.cfg.Limits); err != nil {
			_ = os.RemoveAll(tmp)
			return Snapshot{}, fmt.Errorf("check out %s: %w", head.Hash, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			_ = os.RemoveAll(tmp)
			return Snapshot{}, fmt.Errorf("check out %s: %w", head.Hash, err)
		}
	}
	info := commitInfo(head)
	return Snapshot{
		Revision: head.Hash.String(),
		Dir:      dir,
		Message:  info.Message,
		Author:   info.Author,
		Time:     info.Time,
		Ref:      refLabel(s.cfg.Ref, s.refName),
		Base:     rng.base,
		Commits:  commits,
		Partial:  rng.partial,
	}, nil
}

func commitInfo(c *object.Commit) Commit {
	return Commit{
		Hash:      c.Hash.String(),
		Message:   c.Message,
		Author:    fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Committer: fmt.Sprintf("%s <%s>", c.Committer.Name, c.Committer.Email),
		Time:      c.Committer.When,
	}
}
