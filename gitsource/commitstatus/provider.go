package commitstatus

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Provider names a kind of writer (the --status-provider values).
type Provider string

// Providers.
const (
	ProviderGitea  Provider = "gitea"
	ProviderGitHub Provider = "github"
	ProviderGitLab Provider = "gitlab"
	ProviderNotes  Provider = "notes"
	ProviderNone   Provider = "none"
)

// TokenEnv is the environment variable LoadToken reads when no file is given.
const TokenEnv = "ATOLL_STATUS_TOKEN"

// Config selects and configures one writer; see New.
type Config struct {
	// RepoURL is the fleet repository (https://, ssh:// or user@host:path).
	RepoURL string
	// Provider; empty means guess from RepoURL (see Guess), and Fallback
	// when the guess is inconclusive.
	Provider Provider
	// Fallback when Provider is empty and RepoURL does not tell; default
	// ProviderNotes.
	Fallback Provider
	// StatusURL overrides the derived API base (GitHub Enterprise, GitLab
	// or Gitea under a path prefix, http test servers).
	StatusURL string
	// Token for the API writers (see LoadToken). Never logged.
	Token string
	// Notes configures the notes writer; Notes.Remote.URL defaults to
	// RepoURL.
	Notes NotesConfig
	// HTTPClient, Timeout and Logger are passed to the API writers.
	HTTPClient *http.Client
	Timeout    time.Duration
	Logger     *slog.Logger
}

// LoadToken returns the status token from file when file is set (trimmed;
// an empty file is an error), else from $ATOLL_STATUS_TOKEN (possibly
// empty). Errors name the file, never its content.
func LoadToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(TokenEnv)), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read status token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", invalidConfig("status token file %s is empty", file)
	}
	return tok, nil
}

// Guess infers the provider from a repository URL: github.com is GitHub;
// gitlab.com, or a path with GitLab's "/-/" separator, is GitLab. ok is
// false when the URL does not tell (self-hosted Gitea, GitLab, plain git
// servers).
func Guess(repoURL string) (p Provider, ok bool) {
	r, err := parseRepoURL(repoURL)
	if err != nil {
		return "", false
	}
	switch {
	case r.host == "github.com" || r.host == "www.github.com":
		return ProviderGitHub, true
	case r.host == "gitlab.com" || strings.Contains(r.rawPath+"/", "/-/"):
		return ProviderGitLab, true
	}
	return "", false
}

// New returns the writer cfg selects: GitHub, GitLab or Gitea (API base
// derived from RepoURL unless StatusURL is set), Notes, or for
// ProviderNone a Reporter that discards. Wrap it in NewDedupe and NewQueue
// (see the package documentation).
func New(cfg Config) (Reporter, Provider, error) {
	p := cfg.Provider
	if p == "" {
		var ok bool
		if p, ok = Guess(cfg.RepoURL); !ok {
			p = cfg.Fallback
			if p == "" {
				p = ProviderNotes
			}
		}
	}
	switch p {
	case ProviderNone:
		return Discard, p, nil
	case ProviderNotes:
		nc := cfg.Notes
		if nc.Remote.URL == "" {
			nc.Remote.URL = cfg.RepoURL
		}
		if nc.Logger == nil {
			nc.Logger = cfg.Logger
		}
		n, err := NewNotes(nc)
		return n, p, err
	case ProviderGitHub, ProviderGitLab, ProviderGitea:
	default:
		return nil, p, invalidConfig("unknown status provider %q (want gitea, github, gitlab, notes or none)", p)
	}
	r, err := parseRepoURL(cfg.RepoURL)
	if err != nil {
		return nil, p, err
	}
	if cfg.Token == "" {
		return nil, p, invalidConfig("%s status writer needs a token (--status-token-file or $%s); without one, --status-provider notes writes statuses as git notes and --status-provider none only logs them", p, TokenEnv)
	}
	api := APIConfig{BaseURL: cfg.StatusURL, Token: cfg.Token, HTTPClient: cfg.HTTPClient, Timeout: cfg.Timeout, Logger: cfg.Logger}
	segs := strings.Split(r.path, "/")
	switch p {
	case ProviderGitHub:
		api.Repository = lastTwo(segs)
		if api.BaseURL == "" {
			if r.host == "github.com" || r.host == "www.github.com" {
				api.BaseURL = "https://api.github.com"
			} else {
				api.BaseURL = r.scheme + "://" + r.hostPort + "/api/v3"
			}
		}
		w, err := NewGitHub(api)
		return w, p, err
	case ProviderGitLab:
		api.Repository = r.path
		if api.BaseURL == "" {
			api.BaseURL = r.scheme + "://" + r.hostPort + "/api/v4"
		}
		w, err := NewGitLab(api)
		return w, p, err
	default:
		api.Repository = lastTwo(segs)
		if api.BaseURL == "" {
			prefix := ""
			if len(segs) > 2 {
				prefix = "/" + strings.Join(segs[:len(segs)-2], "/")
			}
			api.BaseURL = r.scheme + "://" + r.hostPort + prefix + "/api/v1"
		}
		w, err := NewGitea(api)
		return w, p, err
	}
}

func lastTwo(segs []string) string {
	if len(segs) < 2 {
		return strings.Join(segs, "/")
	}
	return strings.Join(segs[len(segs)-2:], "/")
}

// Discard is a Reporter that drops every status (--status-provider none).
var Discard Reporter = ReporterFunc(func(context.Context, Status) error { return nil })

type repoURL struct {
	scheme   string // https, or http for an http:// repository URL
	host     string // without port
	hostPort string // for API URLs; the SSH port is dropped
	rawPath  string // path as given
	path     string // repository path: no leading/trailing "/", ".git" or "/-/…"
}

var scpLike = regexp.MustCompile(`^(?:[^@/]+@)?([^:/]+):(.+)$`)

// parseRepoURL understands https://, http://, ssh:// and scp-like
// user@host:path URLs.
func parseRepoURL(raw string) (repoURL, error) {
	if raw == "" {
		return repoURL{}, invalidConfig("repository URL is required")
	}
	var r repoURL
	if m := scpLike.FindStringSubmatch(raw); m != nil && !strings.Contains(raw, "://") {
		r = repoURL{scheme: "https", host: m[1], hostPort: m[1], rawPath: "/" + m[2]}
	} else {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return repoURL{}, invalidConfig("repository URL %q: want https://HOST/PATH, ssh://HOST/PATH or USER@HOST:PATH", redactURL(raw))
		}
		r = repoURL{scheme: "https", host: u.Hostname(), hostPort: u.Host, rawPath: u.Path}
		switch u.Scheme {
		case "http":
			r.scheme = "http"
		case "https":
		default:
			r.hostPort = u.Hostname()
		}
	}
	p := r.rawPath
	if i := strings.Index(p+"/", "/-/"); i >= 0 {
		p = p[:i]
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if p == "" {
		return repoURL{}, invalidConfig("repository URL %q has no path", redactURL(raw))
	}
	r.path = p
	return r, nil
}

// redactURL drops userinfo from a URL for error messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}
