package gitsource

import (
	"context"
	"time"
)

// source is the surface GitSource and DirSource share. The reconciler
// declares its own interface of the methods it uses; this one only pins
// both implementations to the same shape.
type source interface {
	// Fetch returns the current revision. On error the previous snapshot
	// stays the consumer's to keep.
	Fetch(ctx context.Context) (Snapshot, error)
	// Changes signals that Fetch may return something new; signals
	// coalesce.
	Changes() <-chan struct{}
	// Run produces Changes until ctx is cancelled.
	Run(ctx context.Context) error
	// Ready is closed once Run is running.
	Ready() <-chan struct{}
}

var (
	_ source = (*GitSource)(nil)
	_ source = (*DirSource)(nil)
)

// Snapshot is one revision of the fleet declarations, ready to be rendered.
type Snapshot struct {
	// Revision identifies the content: the full commit SHA for a git
	// source, "sha256:<hex>" of the tree's content for a directory source.
	Revision string
	// Dir is the root of the files of this revision. For a git source it
	// is a private checkout that stays unchanged and on disk at least until
	// the Fetch after the one that replaces this snapshot; treat it as
	// read-only. For a directory source it is the watched directory itself.
	Dir string
	// Message, Author and Time describe the head commit (git only).
	// Author is "Name <email>".
	Message string
	Author  string
	Time    time.Time
	// Ref is the configured ref, e.g. "refs/heads/main", "refs/tags/v1" or
	// the configured commit SHA (git only).
	Ref string
	// Base is the revision of the previous snapshot that Commits starts
	// after, or "" when there was none (first fetch) or it could not be
	// found in the local history.
	Base string
	// Commits lists the commits reachable from Revision and not from Base,
	// newest first (head first). With Base == "" it holds only the head.
	// Empty for a directory source and when the head moved back to an
	// ancestor of Base (force-push to an older commit).
	Commits []Commit
	// Partial is true when Commits does not reach back to Base: the local
	// history is shallow at that point or MaxCommits was reached.
	Partial bool
}

// Commit describes one commit of a range.
type Commit struct {
	Hash      string    // full SHA
	Message   string    // full message
	Author    string    // "Name <email>"
	Committer string    // "Name <email>"
	Time      time.Time // committer time
	// Signer names the trusted key that signed the commit when a
	// signature policy is configured: the allowed_signers principal for
	// SSH, the key's first identity for OpenPGP. Empty otherwise.
	Signer string
}
