package gitsource

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// NewRemote validates cfg's URL and credential fields (URL, Username,
// Password, CABundle, SSHPrivateKey, SSHPassphrase, KnownHosts,
// AllowInsecureHTTP, AllowLocal; Timeout, default DefaultTimeout) with the
// rules NewGitSource applies, and returns the remote they describe. It
// refuses file:// URLs and local paths unless AllowLocal, plain http://
// unless AllowInsecureHTTP, git://, passwords inside the URL, and SSH
// without known_hosts. For SSH it writes KnownHosts to stateDir, a
// directory the caller owns. It does not touch the network. Errors wrap
// ErrInvalidConfig.
func NewRemote(cfg GitConfig, stateDir string) (*Remote, error) {
	if cfg.URL == "" {
		return nil, invalidConfig("URL is required")
	}
	if u, err := url.Parse(cfg.URL); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, invalidConfig("URL must not contain a password; use Username and Password")
		}
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, invalidConfig("parse URL: %v", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	r := &Remote{url: cfg.URL, redacted: ep.String(), protocol: ep.Protocol, caBundle: cfg.CABundle, timeout: cfg.Timeout, hostKeyFailed: new(atomic.Bool)}
	if ep.Password != "" {
		r.redacted = strings.Replace(r.redacted, ":"+url.PathEscape(ep.Password)+"@", ":***@", 1)
	}
	hasHTTPCreds := cfg.Username != "" || cfg.Password != ""
	hasSSHCreds := len(cfg.SSHPrivateKey) > 0
	switch ep.Protocol {
	case "https", "http":
		if ep.Protocol == "http" && !cfg.AllowInsecureHTTP {
			return nil, invalidConfig("plain http:// URL %s refused; use https:// or set AllowInsecureHTTP", r.redacted)
		}
		if hasSSHCreds || len(cfg.KnownHosts) > 0 {
			return nil, invalidConfig("SSH key or known_hosts given for %s URL", ep.Protocol)
		}
		if hasHTTPCreds {
			r.auth = &githttp.BasicAuth{Username: cfg.Username, Password: cfg.Password}
		}
	case "ssh":
		if hasHTTPCreds || len(cfg.CABundle) > 0 {
			return nil, invalidConfig("username/password or CA bundle given for ssh URL")
		}
		if len(cfg.KnownHosts) == 0 {
			return nil, invalidConfig("known_hosts is required for ssh URL %s", r.redacted)
		}
		if !hasSSHCreds {
			return nil, invalidConfig("SSH private key is required for ssh URL %s", r.redacted)
		}
		auth, err := sshAuth(&cfg, ep, stateDir, r.hostKeyFailed)
		if err != nil {
			return nil, err
		}
		r.auth = auth
		r.proxy = transport.ProxyOptions{URL: deadlineProxyURL(cfg.Timeout)}
	case "file":
		if !cfg.AllowLocal {
			return nil, invalidConfig("local repository %s refused; set AllowLocal to permit it", cfg.URL)
		}
		if hasHTTPCreds || hasSSHCreds {
			return nil, invalidConfig("credentials given for a local repository")
		}
	default:
		return nil, invalidConfig("unsupported URL scheme %q (want https or ssh)", ep.Protocol)
	}
	return r, nil
}

func sshAuth(cfg *GitConfig, ep *transport.Endpoint, stateDir string, failed *atomic.Bool) (*gitssh.PublicKeys, error) {
	user := ep.User
	if user == "" {
		user = "git"
	}
	auth, err := gitssh.NewPublicKeys(user, cfg.SSHPrivateKey, cfg.SSHPassphrase)
	if err != nil {
		// The error may quote key material; do not wrap it.
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, invalidConfig("SSH private key is encrypted and no passphrase was given")
		}
		return nil, invalidConfig("parse SSH private key (wrong passphrase or unsupported format)")
	}
	// go-git and skeema/knownhosts read known_hosts from files only.
	khPath := filepath.Join(stateDir, "known_hosts")
	if err := os.WriteFile(khPath, cfg.KnownHosts, 0o600); err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(khPath)
	if err != nil {
		return nil, invalidConfig("parse known_hosts: %v", err)
	}
	check := db.HostKeyCallback()
	auth.HostKeyCallback = func(hostname string, addr net.Addr, key ssh.PublicKey) error {
		if err := check(hostname, addr, key); err != nil {
			failed.Store(true)
			return fmt.Errorf("%w: %s offered %s %s: %v", ErrHostKey, hostname, key.Type(), ssh.FingerprintSHA256(key), err)
		}
		return nil
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	auth.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	return auth, nil
}

// classify maps transport failures onto this package's sentinels.
func (r *Remote) classify(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case r.hostKeyFailed.Load() && !errors.Is(err, ErrHostKey):
		return fmt.Errorf("%w: %w", ErrHostKey, err)
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "ssh: unable to authenticate"):
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return err
}
