package commitstatus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGuess(t *testing.T) {
	tests := []struct {
		url    string
		want   Provider
		wantOK bool
	}{
		{"https://github.com/atoll-dev/fleet.git", ProviderGitHub, true},
		{"git@github.com:atoll-dev/fleet.git", ProviderGitHub, true},
		{"ssh://git@github.com/atoll-dev/fleet", ProviderGitHub, true},
		{"https://gitlab.com/infra/clusters/fleet.git", ProviderGitLab, true},
		{"https://git.example.com/infra/fleet/-/tree/main", ProviderGitLab, true},
		{"https://gitea.example.com/ops/fleet.git", "", false},
		{"https://git.example.com/ops/fleet.git", "", false},
		{"::not a url", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, ok := Guess(tt.url)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Guess = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNewDerivesAPI(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantProvider Provider
		wantBase     string
		wantRepo     string
		wantErr      error
		wantMessage  string // in the error
	}{
		{
			name:         "github.com",
			cfg:          Config{RepoURL: "https://github.com/atoll-dev/fleet.git", Token: secret},
			wantProvider: ProviderGitHub, wantBase: "https://api.github.com", wantRepo: "atoll-dev/fleet",
		},
		{
			name:         "github enterprise by flag",
			cfg:          Config{RepoURL: "git@ghe.corp.example:ops/fleet.git", Provider: ProviderGitHub, Token: secret},
			wantProvider: ProviderGitHub, wantBase: "https://ghe.corp.example/api/v3", wantRepo: "ops/fleet",
		},
		{
			name:         "gitlab.com nested group",
			cfg:          Config{RepoURL: "https://gitlab.com/infra/clusters/fleet.git", Token: secret},
			wantProvider: ProviderGitLab, wantBase: "https://gitlab.com/api/v4", wantRepo: "infra/clusters/fleet",
		},
		{
			name:         "self-hosted gitlab by /-/ path",
			cfg:          Config{RepoURL: "https://git.example.com:8443/infra/fleet/-/tree/main", Token: secret},
			wantProvider: ProviderGitLab, wantBase: "https://git.example.com:8443/api/v4", wantRepo: "infra/fleet",
		},
		{
			name:         "gitea under a path prefix",
			cfg:          Config{RepoURL: "https://example.com/git/ops/fleet.git", Provider: ProviderGitea, Token: secret},
			wantProvider: ProviderGitea, wantBase: "https://example.com/git/api/v1", wantRepo: "ops/fleet",
		},
		{
			name:         "gitea as the configured fallback, http",
			cfg:          Config{RepoURL: "http://127.0.0.1:3000/ops/fleet.git", Fallback: ProviderGitea, Token: secret},
			wantProvider: ProviderGitea, wantBase: "http://127.0.0.1:3000/api/v1", wantRepo: "ops/fleet",
		},
		{
			name:         "status-url override",
			cfg:          Config{RepoURL: "https://git.example.com/ops/fleet.git", Provider: ProviderGitea, StatusURL: "https://api.example.com/gitea/api/v1", Token: secret},
			wantProvider: ProviderGitea, wantBase: "https://api.example.com/gitea/api/v1", wantRepo: "ops/fleet",
		},
		{
			name:         "none",
			cfg:          Config{RepoURL: "https://github.com/a/b", Provider: ProviderNone},
			wantProvider: ProviderNone,
		},
		{
			name:         "api provider without token",
			cfg:          Config{RepoURL: "https://github.com/a/b"},
			wantProvider: ProviderGitHub, wantErr: ErrInvalidConfig, wantMessage: "without one, --status-provider notes writes statuses as git notes and --status-provider none only logs them",
		},
		{
			name:         "unknown provider",
			cfg:          Config{RepoURL: "https://github.com/a/b", Provider: "bitbucket", Token: secret},
			wantProvider: "bitbucket", wantErr: ErrInvalidConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p, err := New(tt.cfg)
			if p != tt.wantProvider {
				t.Errorf("provider = %q, want %q", p, tt.wantProvider)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMessage) {
					t.Fatalf("err = %v, want %v saying %q", err, tt.wantErr, tt.wantMessage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var c *apiClient
			switch w := r.(type) {
			case *GitHub:
				c = w.c
			case *GitLab:
				c = w.c
			case *Gitea:
				c = w.c
			default:
				if tt.wantBase != "" {
					t.Fatalf("got %T, want an API writer", r)
				}
				return
			}
			if c.base != tt.wantBase || c.repo != tt.wantRepo {
				t.Errorf("base, repo = %q, %q; want %q, %q", c.base, c.repo, tt.wantBase, tt.wantRepo)
			}
		})
	}
}

func TestNewDefaultsToNotes(t *testing.T) {
	r, p, err := New(Config{RepoURL: "https://git.example.com/ops/fleet.git", Notes: NotesConfig{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*Notes); !ok || p != ProviderNotes {
		t.Errorf("got %T (%s), want *Notes", r, p)
	}
	if err := Discard.Report(context.Background(), Status{}); err != nil {
		t.Errorf("Discard: %v", err)
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TokenEnv, "from-env")
	tests := []struct {
		name    string
		file    string
		want    string
		wantErr bool
	}{
		{name: "file wins", file: good, want: secret},
		{name: "env", want: "from-env"},
		{name: "empty file", file: empty, wantErr: true},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadToken(tt.file)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("LoadToken = %q, %v; want %q, wantErr %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
