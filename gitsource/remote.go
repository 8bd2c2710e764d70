package gitsource

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Remote is a repository URL with validated credentials: basic auth and
// CA bundle for HTTPS, key and known_hosts for SSH, whose connections go
// through the deadline dialer (see deadline.go). GitSource fetches through
// one; other writers to the fleet repository (commit status notes) use
// Fetch and Push so that they follow the same rules. Create it with
// NewRemote. A Remote is not safe for concurrent use.
//
// Its methods take the path of a local repository, not go-git types, so
// that go-git stays behind this package's border.
type Remote struct {
	url      string // as configured (never contains a password)
	redacted string // safe to log
	protocol string // https, http, ssh or file
	auth     transport.AuthMethod
	caBundle []byte
	proxy    transport.ProxyOptions // SSH only: see deadline.go
	timeout  time.Duration          // for each network call
	// hostKeyFailed is set by the SSH host key callback when it refuses
	// the server, so the error can be classified as ErrHostKey whatever
	// go-git makes of it.
	hostKeyFailed *atomic.Bool
}

// String returns the URL with any user password masked; safe to log.
func (r *Remote) String() string { return r.redacted }

// Fetch fetches refspecs (e.g. "+refs/notes/x:refs/notes/x") from the
// remote into the git repository at repoDir (bare or not), without tags,
// in at most the configured Timeout. Being up to date is success. A
// source ref the remote does not have (or an empty remote) is an error
// wrapping ErrRefNotFound; refused credentials wrap ErrAuth, an untrusted
// SSH host key ErrHostKey.
func (r *Remote) Fetch(ctx context.Context, repoDir string, refspecs ...string) error {
	err := r.transfer(ctx, repoDir, refspecs, func(ctx context.Context, st storage.Storer, specs []config.RefSpec) error {
		return r.fetch(ctx, st, &git.FetchOptions{RefSpecs: specs, Tags: git.NoTags})
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, git.NoMatchingRefSpecError{}), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("fetch %v from %s: %w: %w", refspecs, r.redacted, ErrRefNotFound, err)
	}
	return fmt.Errorf("fetch %v from %s: %w", refspecs, r.redacted, r.classify(err))
}

// Push pushes refspecs (e.g. "refs/notes/x:refs/notes/x") from the git
// repository at repoDir to the remote in at most the configured Timeout.
// Nothing to push is success; a rejected non-fast-forward update is an
// error worth retrying after a Fetch. Refused credentials wrap ErrAuth, an
// untrusted SSH host key ErrHostKey.
func (r *Remote) Push(ctx context.Context, repoDir string, refspecs ...string) error {
	err := r.transfer(ctx, repoDir, refspecs, r.push)
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return fmt.Errorf("push %v to %s: %w", refspecs, r.redacted, r.classify(err))
}

// transfer opens the repository at repoDir, checks refspecs and calls do
// with them and the repository's storage, within Timeout.
func (r *Remote) transfer(ctx context.Context, repoDir string, refspecs []string, do func(context.Context, storage.Storer, []config.RefSpec) error) error {
	if len(refspecs) == 0 {
		return fmt.Errorf("%w: no refspec given", ErrInvalidConfig)
	}
	specs := make([]config.RefSpec, len(refspecs))
	for i, s := range refspecs {
		specs[i] = config.RefSpec(s)
		if err := specs[i].Validate(); err != nil {
			return fmt.Errorf("%w: refspec %q: %v", ErrInvalidConfig, s, err)
		}
	}
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return do(ctx, repo.Storer, specs)
}

// remote is an in-memory remote on st; nothing is written to the
// repository's config.
func (r *Remote) remote(st storage.Storer) *git.Remote {
	return git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{r.url}})
}

// list returns the refs the remote advertises. Errors are go-git's, not
// classified.
func (r *Remote) list(ctx context.Context) ([]*plumbing.Reference, error) {
	r.hostKeyFailed.Store(false)
	return r.remote(memory.NewStorage()).ListContext(ctx, &git.ListOptions{Auth: r.auth, CABundle: r.caBundle, ProxyOptions: r.proxy})
}

// push pushes specs from st. Errors are go-git's, not classified.
func (r *Remote) push(ctx context.Context, st storage.Storer, specs []config.RefSpec) error {
	r.hostKeyFailed.Store(false)
	return r.remote(st).PushContext(ctx, &git.PushOptions{RefSpecs: specs, Auth: r.auth, CABundle: r.caBundle, ProxyOptions: r.proxy})
}

// fetch fetches into st with opts plus this remote's credentials. Errors
// are go-git's, not classified.
func (r *Remote) fetch(ctx context.Context, st storage.Storer, opts *git.FetchOptions) error {
	r.hostKeyFailed.Store(false)
	o := *opts
	o.Auth, o.CABundle, o.ProxyOptions = r.auth, r.caBundle, r.proxy
	return r.remote(st).FetchContext(ctx, &o)
}
