// Package gitsource is where fleet declarations come from: a git
// repository (GitSource) or, in watch mode, a local directory (DirSource).
// No go-git or fsnotify type crosses the package border.
//
// Both sources offer the same small surface, which the reconciler can
// capture in its own interface:
//
//	Fetch(ctx) (Snapshot, error) // the current revision, checked out
//	Changes() <-chan struct{}    // "Fetch may find something new"
//	Run(ctx) error               // produces Changes until ctx ends
//	Ready() <-chan struct{}      // closed once Run is running
//
// A Snapshot carries the Revision (full commit SHA, or "sha256:..." of a
// directory's content), the Dir to render from, the head commit's message,
// author and time, and the Commits since the previous snapshot (for
// superseded statuses and signature checks).
//
// # Git
//
// Fetch first asks the remote for the ref's head (ls-remote). An unchanged
// head returns the previous snapshot and transfers no objects; a pinned
// commit costs no network call at all. A new head is fetched shallowly
// (depth 1, deepened only as far as needed to reach the previous revision)
// into a cache repository, and checked out through a bounded filesystem
// into a fresh per-revision directory. Each network call has its own
// timeout; size, file and commit limits fail with ErrLimitExceeded.
// Force-pushes are followed; a deleted branch or tag fails with
// ErrRefDeleted and the previous snapshot stays the base of the next
// Fetch, as it does after any error.
//
// SSH requires known_hosts (no trust on first use); an unknown or changed
// host key fails with ErrHostKey during the handshake, before any git
// command runs. file:// URLs and local paths need AllowLocal, plain http://
// needs AllowInsecureHTTP; git:// is refused.
//
// Other writers to the fleet repository (the commit status notes) reach it
// through a Remote, which applies these rules and the SSH deadline to
// their own fetches and pushes:
//
//	r, err := gitsource.NewRemote(cfg, dir) // dir receives known_hosts
//	if err != nil {
//		return err // wraps ErrInvalidConfig
//	}
//	err = r.Fetch(ctx, repoDir, "+refs/notes/atoll:refs/notes/atoll")
//	// ... commit to refs/notes/atoll in repoDir ...
//	err = r.Push(ctx, repoDir, "refs/notes/atoll:refs/notes/atoll")
//
// With a SignaturePolicy every commit in Snapshot.Commits — not only the
// head — must carry a valid OpenPGP or SSH signature by a trusted key, or
// Fetch fails with a *VerificationError naming the commit (ErrUnsigned or
// ErrUntrusted). A refused range stays refused until the branch no longer
// contains the bad commit.
//
// Run signals Changes every PollInterval; Trigger signals at once. A
// Webhook (GitHub/Gitea HMAC, GitLab token) calls Trigger for
// authenticated deliveries and answers 401 otherwise.
//
//	src, err := gitsource.NewGitSource(gitsource.GitConfig{
//		URL:      "https://github.com/example/fleet.git",
//		Ref:      gitsource.Ref{Branch: "main"},
//		CacheDir: "/var/cache/atoll",
//		Username: "x-access-token", Password: token,
//		Logger:   log,
//	})
//	if err != nil {
//		return err
//	}
//	hook, err := gitsource.NewWebhook(gitsource.WebhookConfig{Secret: secret, Trigger: src.Trigger})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/hooks/git", hook)
//	go src.Run(ctx)
//	for {
//		select {
//		case <-ctx.Done():
//			return nil
//		case <-src.Changes():
//		}
//		snap, err := src.Fetch(ctx)
//		if err != nil {
//			// keep the last applied revision; gitsource.IsTerminal(err)
//			// tells whether only a new revision or new config can help
//			continue
//		}
//		if snap.Revision != applied {
//			apply(snap.Dir) // and report on snap.Commits
//			applied = snap.Revision
//		}
//	}
//
// # Directory
//
// DirSource watches a tree with fsnotify, following new sub-directories,
// and signals Changes after Debounce (default 300ms) of quiet when the
// content hash changed — so an editor's write-temp-then-rename save, or a
// burst of writes, yields one signal, and saving a file unchanged yields
// none. Its Snapshot.Dir is the watched directory itself.
package gitsource
