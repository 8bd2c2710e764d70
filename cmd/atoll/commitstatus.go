package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/gitsource/commitstatus"
	"github.com/atoll-dev/atoll/reconcile"
)

// commitStatusOptions are the flags choosing where commit statuses go.
type commitStatusOptions struct {
	provider  string
	url       string
	tokenFile string
}

func (o *commitStatusOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.provider, "status-provider", "", "where commit statuses go: gitea, github, gitlab, notes or none (default: guessed from --repo, else notes)")
	f.StringVar(&o.url, "status-url", "", "API base of the git host when it cannot be derived from --repo")
	f.StringVar(&o.tokenFile, "status-token-file", "", "file holding the git host API token (default: $"+commitstatus.TokenEnv+")")
}

// reporter builds the commit-status chain for the fleet repository: the
// writer, behind a dedupe, behind a queue whose run delivers in the
// background so an unreachable git host never holds up reconciling. run is
// nil when statuses only go to the log.
func (o *commitStatusOptions) reporter(git gitsource.GitConfig, cacheDir string, log *slog.Logger) (r reconcile.StatusReporter, run func(context.Context) error, err error) {
	log = log.With("component", "status")
	if commitstatus.Provider(o.provider) == commitstatus.ProviderNone {
		return logReporter{log}, nil, nil
	}
	token, err := commitstatus.LoadToken(o.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	writer, provider, err := commitstatus.New(commitstatus.Config{
		RepoURL:   git.URL,
		Provider:  commitstatus.Provider(o.provider),
		StatusURL: o.url,
		Token:     token,
		Notes:     commitstatus.NotesConfig{Remote: git, Dir: filepath.Join(cacheDir, "notes"), Logger: log},
		Logger:    log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("commit statuses: %w", err)
	}
	if provider == commitstatus.ProviderNone {
		return logReporter{log}, nil, nil
	}
	queue, err := commitstatus.NewQueue(commitstatus.QueueConfig{Reporter: commitstatus.NewDedupe(writer, 0), Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("commit statuses: %w", err)
	}
	log.Info("commit statuses", "provider", provider)
	return queuedReporter{queue}, queue.Run, nil
}

// queuedReporter hands the reconciler's statuses to the commit-status queue.
type queuedReporter struct{ q *commitstatus.Queue }

func (a queuedReporter) Report(ctx context.Context, s reconcile.CommitStatus) error {
	return a.q.Report(ctx, commitstatus.Status{Revision: s.Revision, Context: s.Context,
		Description: s.Description, TargetURL: s.TargetURL, State: commitstatus.State(s.State)})
}

// logReporter writes commit statuses to the log (no git host configured).
type logReporter struct{ log *slog.Logger }

func (l logReporter) Report(_ context.Context, s reconcile.CommitStatus) error {
	l.log.Info("commit status", "revision", s.Revision, "context", s.Context, "state", s.State, "description", s.Description)
	return nil
}
