package gitsource

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// sshNamespace is the sshsig namespace git signs commits in.
const sshNamespace = "git"

// SignaturePolicy lists the keys trusted to sign commits. A commit passes
// when its signature verifies against one of them; unsigned commits and
// commits signed by any other key are refused. Set at least one field.
//
// Every commit between the previous snapshot and the new head is checked.
// On the very first fetch (no previous snapshot, or LastApplied not
// fetchable) only the head is. If the commits since the previous snapshot
// cannot all be listed (more than Limits.MaxCommits), the revision is
// refused rather than half-checked.
type SignaturePolicy struct {
	// OpenPGPKeys are ASCII-armored public keys or key rings.
	OpenPGPKeys []string
	// SSHAllowedSigners is the content of an allowed_signers file as used
	// by git's gpg.ssh.allowedSignersFile ("principals [options] key";
	// only the namespaces option is supported).
	SSHAllowedSigners []byte
}

type allowedSigner struct {
	principals string
	key        ssh.PublicKey
	namespaces []string // empty: any
}

type verifier struct {
	pgp openpgp.EntityList
	ssh []allowedSigner
}

func newVerifier(p *SignaturePolicy) (*verifier, error) {
	v := &verifier{}
	for i, k := range p.OpenPGPKeys {
		ring, err := openpgp.ReadArmoredKeyRing(strings.NewReader(k))
		if err != nil {
			return nil, invalidConfig("read OpenPGP key %d: %v", i, err)
		}
		v.pgp = append(v.pgp, ring...)
	}
	signers, err := parseAllowedSigners(p.SSHAllowedSigners)
	if err != nil {
		return nil, err
	}
	v.ssh = signers
	if len(v.pgp) == 0 && len(v.ssh) == 0 {
		return nil, invalidConfig("signature policy has no keys")
	}
	return v, nil
}

func parseAllowedSigners(data []byte) ([]allowedSigner, error) {
	var out []allowedSigner
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var principals, rest string
		if strings.HasPrefix(line, `"`) {
			end := strings.Index(line[1:], `"`)
			if end < 0 {
				return nil, invalidConfig("allowed_signers line %d: unterminated quote", n)
			}
			principals, rest = line[1:end+1], line[end+2:]
		} else {
			var ok bool
			principals, rest, ok = strings.Cut(line, " ")
			if !ok {
				principals, rest, _ = strings.Cut(line, "\t")
			}
		}
		key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil {
			return nil, invalidConfig("allowed_signers line %d: parse key: %v", n, err)
		}
		s := allowedSigner{principals: principals, key: key}
		for _, o := range options {
			name, value, _ := strings.Cut(o, "=")
			switch strings.ToLower(name) {
			case "namespaces":
				s.namespaces = strings.Split(strings.Trim(value, `"`), ",")
			default:
				return nil, invalidConfig("allowed_signers line %d: option %q not supported", n, name)
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, invalidConfig("read allowed_signers: %v", err)
	}
	return out, nil
}

func (s allowedSigner) allows(namespace string) bool {
	if len(s.namespaces) == 0 {
		return true
	}
	for _, ns := range s.namespaces {
		if ns == namespace || ns == "*" {
			return true
		}
	}
	return false
}

// verify checks c's signature against the policy and returns who signed.
func (v *verifier) verify(c *object.Commit) (string, error) {
	refuse := func(sentinel error, format string, args ...any) (string, error) {
		return "", &VerificationError{Commit: c.Hash.String(), Reason: fmt.Sprintf(format, args...), Err: sentinel}
	}
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return refuse(ErrUnsigned, "no signature")
	}
	if strings.Count(sig, "-----BEGIN ") > 1 {
		return refuse(ErrUntrusted, "more than one signature")
	}
	payload, err := signedPayload(c)
	if err != nil {
		return "", fmt.Errorf("encode commit %s: %w", c.Hash, err)
	}
	switch {
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		parsed, err := sshsig.Unarmor([]byte(sig))
		if err != nil {
			return refuse(ErrUntrusted, "malformed SSH signature: %v", err)
		}
		fp := ssh.FingerprintSHA256(parsed.PublicKey)
		for _, s := range v.ssh {
			if ssh.FingerprintSHA256(s.key) != fp || !s.allows(sshNamespace) {
				continue
			}
			if err := sshsig.Verify(bytes.NewReader(payload), parsed, s.key, parsed.HashAlgorithm, sshNamespace); err != nil {
				return refuse(ErrUntrusted, "bad SSH signature by %s: %v", fp, err)
			}
			return s.principals, nil
		}
		return refuse(ErrUntrusted, "SSH key %s is not in allowed_signers", fp)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		if len(v.pgp) == 0 {
			return refuse(ErrUntrusted, "OpenPGP signature but no OpenPGP keys are trusted")
		}
		signer, err := openpgp.CheckArmoredDetachedSignature(v.pgp, bytes.NewReader(payload), strings.NewReader(sig), nil)
		if err != nil {
			return refuse(ErrUntrusted, "OpenPGP: %v", err)
		}
		if id := signer.PrimaryIdentity(); id != nil {
			return id.Name, nil
		}
		return fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint), nil
	default:
		return refuse(ErrUntrusted, "unsupported signature format")
	}
}

func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
