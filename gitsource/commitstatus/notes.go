package commitstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/atoll-dev/atoll/gitsource"
)

// DefaultNotesRef is where the notes writer keeps its notes; read them with
// `git fetch origin refs/notes/atoll:refs/notes/atoll && git notes
// --ref=atoll show SHA`.
const DefaultNotesRef = "refs/notes/atoll"

// pushAttempts bounds fetch-merge-push rounds when another writer pushed
// the notes ref in between.
const pushAttempts = 4

// NotesConfig configures a Notes writer. Remote.URL and Dir are required.
type NotesConfig struct {
	// Remote is the fleet repository, with the same URL and credential
	// fields, and the same rules, as the git source's configuration. Only
	// URL, Username, Password, CABundle, SSHPrivateKey, SSHPassphrase,
	// KnownHosts, AllowInsecureHTTP, AllowLocal and Timeout are used; the
	// credentials need push access to the notes ref.
	Remote gitsource.GitConfig
	// Dir is a directory owned by the writer for its bare work repository
	// (created with mode 0700).
	Dir string
	// Ref; default DefaultNotesRef.
	Ref string
	// AuthorName and AuthorEmail sign the notes commits; default
	// "Atoll" <atoll@localhost>.
	AuthorName, AuthorEmail string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Note is the JSON document stored for one commit: every status context
// Atoll reported on it, newest state each.
type Note struct {
	Statuses map[string]NoteStatus `json:"statuses"`
}

// NoteStatus is one context's status in a Note.
type NoteStatus struct {
	State       State  `json:"state"`
	Description string `json:"description,omitempty"`
	TargetURL   string `json:"target_url,omitempty"`
}

// Notes writes statuses as git notes: one JSON Note per commit under
// refs/notes/atoll, pushed to the fleet repository itself. It needs no API
// and works with any git server that accepts pushes. Each Report fetches
// the notes ref, merges the status into the commit's note, commits and
// pushes; a push that loses a race is redone from a fresh fetch.
type Notes struct {
	cfg    NotesConfig
	log    *slog.Logger
	ref    plumbing.ReferenceName
	remote *gitsource.Remote

	mu sync.Mutex // serializes Report
	// repo is the work repository, opened anew after each fetch: a
	// *git.Repository does not see packs written through another one.
	repo *git.Repository
}

var _ Reporter = (*Notes)(nil)

// NewNotes checks cfg and prepares the work repository. It does not touch
// the network.
func NewNotes(cfg NotesConfig) (*Notes, error) {
	if cfg.Dir == "" {
		return nil, invalidConfig("notes: Dir is required")
	}
	if cfg.Ref == "" {
		cfg.Ref = DefaultNotesRef
	}
	ref := plumbing.ReferenceName(cfg.Ref)
	if !strings.HasPrefix(cfg.Ref, "refs/notes/") || ref.Validate() != nil {
		return nil, invalidConfig("notes: Ref %q: want refs/notes/NAME", cfg.Ref)
	}
	if cfg.AuthorName == "" {
		cfg.AuthorName = "Atoll"
	}
	if cfg.AuthorEmail == "" {
		cfg.AuthorEmail = "atoll@localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create notes directory: %w", err)
	}
	remote, err := gitsource.NewRemote(cfg.Remote, cfg.Dir)
	if err != nil {
		if errors.Is(err, gitsource.ErrInvalidConfig) {
			return nil, remoteConfigError{err}
		}
		return nil, err
	}
	repo, err := git.PlainOpen(cfg.Dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(cfg.Dir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open notes repository %s: %w", cfg.Dir, err)
	}
	return &Notes{
		cfg:    cfg,
		log:    cfg.Logger.With("provider", "notes", "url", remote.String(), "ref", cfg.Ref),
		ref:    ref,
		remote: remote,
		repo:   repo,
	}, nil
}

// Report merges s into the note of s.Revision and pushes the notes ref.
func (n *Notes) Report(ctx context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	for attempt := 1; attempt <= pushAttempts; attempt++ {
		var changed bool
		if changed, err = n.report(ctx, s); err == nil {
			if changed {
				n.log.Debug("note pushed", "revision", s.Revision, "context", s.Context, "state", s.State)
			}
			return nil
		}
		if IsTerminal(err) || ctx.Err() != nil {
			break
		}
		n.log.Debug("notes round failed", "attempt", attempt, "err", err)
	}
	return wrap(s, "notes", err)
}

// report is one fetch-merge-push round. It reports whether it pushed.
func (n *Notes) report(ctx context.Context, s Status) (bool, error) {
	parent, err := n.fetch(ctx)
	if err != nil {
		return false, err
	}
	var root *object.Tree
	if !parent.IsZero() {
		c, err := n.repo.CommitObject(parent)
		if err != nil {
			return false, fmt.Errorf("read notes commit: %w", err)
		}
		if root, err = c.Tree(); err != nil {
			return false, fmt.Errorf("read notes tree: %w", err)
		}
	}
	note := Note{Statuses: map[string]NoteStatus{}}
	old, err := readNote(root, s.Revision)
	if err != nil {
		return false, err
	}
	if old != nil {
		if err := json.Unmarshal(old, &note); err != nil || note.Statuses == nil {
			// Not ours or damaged: start over rather than fail forever.
			n.log.Warn("replacing unreadable note", "revision", s.Revision)
			note = Note{Statuses: map[string]NoteStatus{}}
		}
	}
	note.Statuses[s.Context] = NoteStatus{State: s.State, Description: s.Description, TargetURL: s.TargetURL}
	data, err := json.MarshalIndent(note, "", "  ")
	if err != nil {
		return false, terminal(fmt.Errorf("encode note: %w", err))
	}
	data = append(data, '\n')
	if bytes.Equal(data, old) {
		return false, nil
	}
	blob, err := n.storeBlob(data)
	if err != nil {
		return false, err
	}
	tree, err := n.putNote(root, s.Revision, blob)
	if err != nil {
		return false, err
	}
	commit, err := n.storeCommit(tree, parent, s)
	if err != nil {
		return false, err
	}
	if err := n.repo.Storer.SetReference(plumbing.NewHashReference(n.ref, commit)); err != nil {
		return false, fmt.Errorf("update %s: %w", n.ref, err)
	}
	return true, n.push(ctx)
}

// fetch mirrors the remote notes ref into the work repository and returns
// its commit (zero when the remote has none yet).
func (n *Notes) fetch(ctx context.Context) (plumbing.Hash, error) {
	err := n.remote.Fetch(ctx, n.cfg.Dir, "+"+n.ref.String()+":"+n.ref.String())
	missing := errors.Is(err, gitsource.ErrRefNotFound)
	if err != nil && !missing {
		return plumbing.ZeroHash, classifyGit("fetch notes", err)
	}
	repo, oerr := git.PlainOpen(n.cfg.Dir)
	if oerr != nil {
		return plumbing.ZeroHash, fmt.Errorf("open notes repository %s: %w", n.cfg.Dir, oerr)
	}
	n.repo = repo
	if missing {
		// No notes yet on the remote: start a fresh history.
		if rerr := n.repo.Storer.RemoveReference(n.ref); rerr != nil {
			return plumbing.ZeroHash, fmt.Errorf("reset %s: %w", n.ref, rerr)
		}
		return plumbing.ZeroHash, nil
	}
	r, err := n.repo.Reference(n.ref, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s: %w", n.ref, err)
	}
	return r.Hash(), nil
}

func (n *Notes) push(ctx context.Context) error {
	if err := n.remote.Push(ctx, n.cfg.Dir, n.ref.String()+":"+n.ref.String()); err != nil {
		return classifyGit("push notes", err)
	}
	return nil
}

// classifyGit marks refused credentials, an untrusted SSH host key and a
// missing repository terminal; everything else (network, a lost push
// race) is retryable.
func classifyGit(op string, err error) error {
	err = fmt.Errorf("%s: %w", op, err)
	if errors.Is(err, gitsource.ErrAuth) || errors.Is(err, gitsource.ErrHostKey) || errors.Is(err, transport.ErrRepositoryNotFound) {
		return terminal(err)
	}
	return retryable(err, 0)
}

func (n *Notes) storeBlob(data []byte) (plumbing.Hash, error) {
	obj := n.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return n.repo.Storer.SetEncodedObject(obj)
}

func (n *Notes) storeTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	sortTree(entries)
	t := &object.Tree{Entries: entries}
	obj := n.repo.Storer.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode notes tree: %w", err)
	}
	return n.repo.Storer.SetEncodedObject(obj)
}

func (n *Notes) storeCommit(tree, parent plumbing.Hash, s Status) (plumbing.Hash, error) {
	sig := object.Signature{Name: n.cfg.AuthorName, Email: n.cfg.AuthorEmail, When: time.Now()}
	c := &object.Commit{
		Author:    sig,
		Committer: sig,
		Message:   fmt.Sprintf("atoll: %s %s on %s\n", s.Context, s.State, short(s.Revision)),
		TreeHash:  tree,
	}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	obj := n.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode notes commit: %w", err)
	}
	return n.repo.Storer.SetEncodedObject(obj)
}

// readNote returns the note of sha in a notes tree, following git's fanout
// directories ("ab/cdef…"), or nil.
func readNote(t *object.Tree, sha string) ([]byte, error) {
	for t != nil && sha != "" {
		var next *object.Tree
		for _, e := range t.Entries {
			switch {
			case e.Name == sha && e.Mode.IsFile():
				f, err := t.TreeEntryFile(&e)
				if err != nil {
					return nil, fmt.Errorf("read note %s: %w", sha, err)
				}
				r, err := f.Reader()
				if err != nil {
					return nil, fmt.Errorf("read note %s: %w", sha, err)
				}
				defer r.Close()
				return io.ReadAll(io.LimitReader(r, 1<<20))
			case e.Mode == filemode.Dir && len(e.Name) == 2 && strings.HasPrefix(sha, e.Name):
				sub, err := t.Tree(e.Name)
				if err != nil {
					return nil, fmt.Errorf("read notes tree: %w", err)
				}
				next = sub
			}
		}
		if next == nil {
			return nil, nil
		}
		t, sha = next, sha[2:]
	}
	return nil, nil
}

// putNote returns a tree like t with blob as the note of sha: in the
// fanout directory that already holds sha's prefix, else at the top.
func (n *Notes) putNote(t *object.Tree, sha string, blob plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if t != nil {
		entries = append(entries, t.Entries...)
	}
	for i, e := range entries {
		if e.Mode == filemode.Dir && len(e.Name) == 2 && strings.HasPrefix(sha, e.Name) && len(sha) > 2 {
			sub, err := t.Tree(e.Name)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("read notes tree: %w", err)
			}
			h, err := n.putNote(sub, sha[2:], blob)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			entries[i].Hash = h
			return n.storeTree(entries)
		}
	}
	for i, e := range entries {
		if e.Name == sha {
			entries[i] = object.TreeEntry{Name: sha, Mode: filemode.Regular, Hash: blob}
			return n.storeTree(entries)
		}
	}
	entries = append(entries, object.TreeEntry{Name: sha, Mode: filemode.Regular, Hash: blob})
	return n.storeTree(entries)
}

// sortTree orders entries as git requires: by name, directories compared
// as if their name ended in "/".
func sortTree(entries []object.TreeEntry) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
}
