package commitstatus

import (
	"net/url"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/atoll-dev/atoll/gitsource"
)

// remoteAuth turns the git source's URL and credential fields into go-git
// auth, applying the same rules as gitsource (no password in the URL,
// http:// only with AllowInsecureHTTP, local only with AllowLocal, SSH only
// with known_hosts).
//
// TODO(lead): gitsource's newRemote does exactly this (and classifies host
// key failures); once gitsource exports it, e.g. as
// `func (c GitConfig) Transport(stateDir string) (Transport, error)`,
// this file goes.
func remoteAuth(cfg *gitsource.GitConfig, dir string) (transport.AuthMethod, string, error) {
	if cfg.URL == "" {
		return nil, "", invalidConfig("notes: Remote.URL is required")
	}
	if u, err := url.Parse(cfg.URL); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, "", invalidConfig("notes: URL must not contain a password; use Username and Password")
		}
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, "", invalidConfig("notes: parse URL: %v", err)
	}
	redacted := ep.String()
	switch ep.Protocol {
	case "https", "http":
		if ep.Protocol == "http" && !cfg.AllowInsecureHTTP {
			return nil, "", invalidConfig("notes: plain http:// URL %s refused; set AllowInsecureHTTP", redacted)
		}
		if cfg.Username != "" || cfg.Password != "" {
			return &githttp.BasicAuth{Username: cfg.Username, Password: cfg.Password}, redacted, nil
		}
		return nil, redacted, nil
	case "ssh":
		if len(cfg.KnownHosts) == 0 || len(cfg.SSHPrivateKey) == 0 {
			return nil, "", invalidConfig("notes: ssh URL %s needs SSHPrivateKey and KnownHosts", redacted)
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		auth, err := gitssh.NewPublicKeys(user, cfg.SSHPrivateKey, cfg.SSHPassphrase)
		if err != nil {
			return nil, "", invalidConfig("notes: parse SSH private key (wrong passphrase or unsupported format)")
		}
		kh := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(kh, cfg.KnownHosts, 0o600); err != nil {
			return nil, "", err
		}
		if auth.HostKeyCallback, err = gitssh.NewKnownHostsCallback(kh); err != nil {
			return nil, "", invalidConfig("notes: parse known_hosts: %v", err)
		}
		return auth, redacted, nil
	case "file":
		if !cfg.AllowLocal {
			return nil, "", invalidConfig("notes: local repository %s refused; set AllowLocal", cfg.URL)
		}
		return nil, redacted, nil
	}
	return nil, "", invalidConfig("notes: unsupported URL scheme %q", ep.Protocol)
}
