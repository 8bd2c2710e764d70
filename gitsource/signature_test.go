package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"

	"github.com/atoll-dev/atoll/test/gitserver"
)

// signer makes commits in a gitserver.Repo signed one way or another.
type signer interface {
	commit(t *testing.T, f *gitserver.Repo, files map[string]string, msg string) string
}

type unsignedSigner struct{}

func (unsignedSigner) commit(t *testing.T, f *gitserver.Repo, files map[string]string, msg string) string {
	return f.Commit(files, msg)
}

// pgpSigner signs with go-git and an OpenPGP key made by ProtonMail/go-crypto.
type pgpSigner struct{ entity *openpgp.Entity }

func newPGPSigner(t *testing.T, name string) pgpSigner {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", name+"@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	return pgpSigner{entity: e}
}

func (s pgpSigner) armoredPublic(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.entity.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func (s pgpSigner) commit(t *testing.T, f *gitserver.Repo, files map[string]string, msg string) string {
	t.Helper()
	f.Write(files)
	repo, err := git.PlainOpen(f.Work)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Ada Author", Email: "ada@example.com", When: f.Tick()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: s.entity, AllowEmptyCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// sshSigner signs with the git CLI (gpg.format=ssh, i.e. ssh-keygen -Y sign).
type sshSigner struct {
	keyFile string
	pub     ssh.PublicKey
}

func newSSHSigner(t *testing.T) sshSigner {
	t.Helper()
	pub, priv := newED25519(t)
	p := filepath.Join(t.TempDir(), "signing_key")
	if err := os.WriteFile(p, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	return sshSigner{keyFile: p, pub: pub}
}

func (s sshSigner) allowedSigners(principal string) []byte {
	return append([]byte(principal+` namespaces="git" `), ssh.MarshalAuthorizedKey(s.pub)...)
}

func (s sshSigner) commit(t *testing.T, f *gitserver.Repo, files map[string]string, msg string) string {
	return f.Commit(files, msg, "-c", "gpg.format=ssh", "-c", "user.signingkey="+s.keyFile, "-c", "commit.gpgsign=true")
}

func TestGitSourceSignatures(t *testing.T) {
	pgpTrusted, pgpOther := newPGPSigner(t, "trusted"), newPGPSigner(t, "other")
	sshTrusted, sshOther := newSSHSigner(t), newSSHSigner(t)
	pgpPolicy := &SignaturePolicy{OpenPGPKeys: []string{pgpTrusted.armoredPublic(t)}}
	sshPolicy := &SignaturePolicy{SSHAllowedSigners: sshTrusted.allowedSigners("release@example.com")}

	tests := []struct {
		name       string
		policy     *SignaturePolicy
		trusted    signer
		middle     signer // signs the second of three new commits
		wantSigner string
		wantErr    error
	}{
		{name: "OpenPGP all signed", policy: pgpPolicy, trusted: pgpTrusted, middle: pgpTrusted, wantSigner: "trusted (test) <trusted@example.com>"},
		{name: "OpenPGP unsigned in the middle", policy: pgpPolicy, trusted: pgpTrusted, middle: unsignedSigner{}, wantErr: ErrUnsigned},
		{name: "OpenPGP wrong key in the middle", policy: pgpPolicy, trusted: pgpTrusted, middle: pgpOther, wantErr: ErrUntrusted},
		{name: "OpenPGP policy, SSH signature in the middle", policy: pgpPolicy, trusted: pgpTrusted, middle: sshTrusted, wantErr: ErrUntrusted},
		{name: "SSH all signed", policy: sshPolicy, trusted: sshTrusted, middle: sshTrusted, wantSigner: "release@example.com"},
		{name: "SSH unsigned in the middle", policy: sshPolicy, trusted: sshTrusted, middle: unsignedSigner{}, wantErr: ErrUnsigned},
		{name: "SSH wrong key in the middle", policy: sshPolicy, trusted: sshTrusted, middle: sshOther, wantErr: ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gitserver.NewRepo(t)
			base := tt.trusted.commit(t, f, map[string]string{"a.yaml": "v: 0\n"}, "base")
			f.Push("main")
			srv := gitserver.Start(t, f.Root, gitserver.Options{})
			src := newHTTPSource(t, srv, func(c *GitConfig) {
				c.Username, c.Password = "", ""
				c.Signatures = tt.policy
			})
			ctx := fetchCtx(t)
			snap, err := src.Fetch(ctx)
			if err != nil {
				t.Fatalf("Fetch of the signed base: %v", err)
			}
			if snap.Revision != base || snap.Commits[0].Signer == "" {
				t.Fatalf("base snapshot = %+v", snap)
			}

			c1 := tt.trusted.commit(t, f, map[string]string{"a.yaml": "v: 1\n"}, "one")
			c2 := tt.middle.commit(t, f, map[string]string{"a.yaml": "v: 2\n"}, "two")
			c3 := tt.trusted.commit(t, f, map[string]string{"a.yaml": "v: 3\n"}, "three")
			f.Push("main")
			snap, err = src.Fetch(ctx)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if snap.Revision != c3 || len(snap.Commits) != 3 {
					t.Fatalf("snapshot = %+v", snap)
				}
				for i, c := range snap.Commits {
					if c.Hash != []string{c3, c2, c1}[i] || c.Signer != tt.wantSigner {
						t.Errorf("commit %d = %s signed by %q, want %s by %q", i, c.Hash, c.Signer, []string{c3, c2, c1}[i], tt.wantSigner)
					}
				}
				return
			}
			var verr *VerificationError
			if !errors.As(err, &verr) || !errors.Is(err, tt.wantErr) || verr.Commit != c2 || !IsTerminal(err) {
				t.Fatalf("Fetch = %v, want %v naming %s", err, tt.wantErr, c2)
			}

			// The refusal sticks without fetching again, and a good commit
			// on top does not launder the bad one: the range still starts
			// at the last accepted revision.
			packs := srv.UploadPacks()
			if _, err := src.Fetch(ctx); !errors.As(err, &verr) || verr.Commit != c2 {
				t.Fatalf("second Fetch = %v, want refusal of %s", err, c2)
			}
			if srv.UploadPacks() != packs {
				t.Errorf("second Fetch of a refused head fetched again")
			}
			tt.trusted.commit(t, f, map[string]string{"a.yaml": "v: 4\n"}, "four")
			f.Push("main")
			if _, err := src.Fetch(ctx); !errors.As(err, &verr) || verr.Commit != c2 {
				t.Fatalf("Fetch after a good commit on top = %v, want refusal of %s", err, c2)
			}

			// Reverting the branch to the last accepted revision heals.
			f.Git(f.Work, "reset", "-q", "--hard", base)
			f.Push("--force", "main")
			snap, err = src.Fetch(ctx)
			if err != nil || snap.Revision != base {
				t.Fatalf("Fetch after revert = %+v, %v", snap, err)
			}
		})
	}
}

func TestSignaturePolicyConfig(t *testing.T) {
	tests := []struct {
		name    string
		policy  SignaturePolicy
		wantErr bool
	}{
		{name: "empty", wantErr: true},
		{name: "bad OpenPGP key", policy: SignaturePolicy{OpenPGPKeys: []string{"not a key"}}, wantErr: true},
		{name: "bad allowed_signers", policy: SignaturePolicy{SSHAllowedSigners: []byte("a@b ssh-ed25519 !!!")}, wantErr: true},
		{name: "unsupported option", policy: SignaturePolicy{SSHAllowedSigners: []byte("a@b cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIm7LKtxwJb0B2BAJL6YAyJ8zUt9KoVw2uM8J9YjXOsD")}, wantErr: true},
		{name: "comments and blank lines", policy: SignaturePolicy{SSHAllowedSigners: []byte("# team\n\na@b,c@d ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIm7LKtxwJb0B2BAJL6YAyJ8zUt9KoVw2uM8J9YjXOsD laptop\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newVerifier(&tt.policy)
			if (err != nil) != tt.wantErr {
				t.Fatalf("newVerifier error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v is not ErrInvalidConfig", err)
			}
		})
	}
}

// TestGitSourceSignaturesTooManyCommits: a range longer than MaxCommits
// cannot be checked completely and is refused, not half-checked.
func TestGitSourceSignaturesTooManyCommits(t *testing.T) {
	signer := newSSHSigner(t)
	f := gitserver.NewRepo(t)
	signer.commit(t, f, map[string]string{"a.yaml": "0\n"}, "base")
	f.Push("main")
	srv := gitserver.Start(t, f.Root, gitserver.Options{})
	src := newHTTPSource(t, srv, func(c *GitConfig) {
		c.Username, c.Password = "", ""
		c.Limits.MaxCommits = 2
		c.Signatures = &SignaturePolicy{SSHAllowedSigners: signer.allowedSigners("a@example.com")}
	})
	ctx := fetchCtx(t)
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	var head string
	for i := range 3 {
		head = signer.commit(t, f, map[string]string{"a.yaml": fmt.Sprint(i)}, "more")
	}
	f.Push("main")
	_, err := src.Fetch(ctx)
	var verr *VerificationError
	if !errors.As(err, &verr) || verr.Commit != head || !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Fetch = %v, want refusal naming %s", err, head)
	}
}
