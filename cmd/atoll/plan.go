package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/gitsource/commitstatus"
	"github.com/atoll-dev/atoll/reconcile"
)

// Exit codes of `atoll plan`, like `terraform plan -detailed-exitcode`.
const (
	planExitChanges = 1
	planExitError   = 2
	planExitBreaker = 3 // changes, which Atoll would refuse (breaker)
)

type planFlags struct {
	repo, path, mode string
	maxShare         float64
	status           planStatusFlags
}

func newPlanCommand() *cobra.Command {
	var fl planFlags
	cmd := &cobra.Command{
		Use:   "plan BASE HEAD",
		Short: "Show the node-level diff between two revisions of a fleet, without cluster access",
		Long: `Plan renders two revisions of a fleet and prints what applying HEAD over
BASE would do to the virtual nodes: nodes added (+), updated (~, one line
per label, taint, capacity, cordon, namespace, credential or toleration
change) and removed (-).

BASE and HEAD are two fleet directories, or with --path two repository
roots holding the fleet at --path. With --repo they are two revisions
(commits, branches, tags) of that git repository, checked out as atoll
run checks out what it fetches; then HEAD's commit message is also
checked against the mass-removal breaker (trailer Atoll-Allow-Removal: N).

With --post-status (needs --repo) the outcome is also posted as a commit
status with context atoll/plan on HEAD's commit — e.g. on a pull
request's head: success with the summary ("+1 node cern-003 · taint
changed on gke-001", or "no node changes"), failure with the breaker's
reason when Atoll would refuse HEAD, failure with the error when the plan
fails. The provider is chosen as for atoll run, from --repo-url
or else the origin remote of --repo. A status that cannot be posted makes
the exit code 2.

Exit code: 0 no changes, 1 changes, 2 error, 3 changes Atoll would refuse
(the breaker; needs --repo).`,
		Example: `  atoll plan --repo . --path overlays/prod origin/main HEAD
  atoll plan --mode watch examples/fleet/overlays/dev examples/fleet/overlays/prod
  atoll plan --repo . --post-status --status-provider gitea origin/main HEAD`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &exitError{code: planExitError, err: fmt.Errorf("plan needs BASE and HEAD, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fl.status.post {
				_, err := runPlan(cmd, fl, args[0], args[1])
				return err
			}
			return runPlanPostingStatus(cmd, fl, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&fl.repo, "repo", "", "git repository: BASE and HEAD are revisions of it")
	cmd.Flags().StringVar(&fl.path, "path", "", "fleet path inside the repository (default: the repository root with --repo; BASE and HEAD themselves without)")
	cmd.Flags().StringVar(&fl.mode, "mode", "git", "source mode: git (credentials must be secretRef) or watch (path allowed)")
	cmd.Flags().Float64Var(&fl.maxShare, "max-removal-share", reconcile.DefaultMaxRemovalShare, "breaker: share of live nodes a revision may remove without the trailer (--repo only)")
	fl.status.addFlags(cmd.Flags())
	return cmd
}

// runPlan prints the plan of HEAD over BASE and returns it (nil when it
// could not be computed) with the command's result: nil for no changes, an
// *exitError with planExitChanges or planExitError otherwise.
func runPlan(cmd *cobra.Command, fl planFlags, base, head string) (*reconcile.Plan, error) {
	fail := func(err error) error { return &exitError{code: planExitError, err: err} }
	mode, err := parseSourceMode(fl.mode)
	if err != nil {
		return nil, fail(err)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	type side struct {
		name, root, path, message string
	}
	sides := []*side{{name: "base"}, {name: "head"}}
	if fl.repo != "" {
		repo, err := gitsource.OpenLocal(fl.repo)
		if err != nil {
			return nil, fail(err)
		}
		for i, rev := range []string{base, head} {
			dir, err := os.MkdirTemp("", "atoll-plan-")
			if err != nil {
				return nil, fail(err)
			}
			defer os.RemoveAll(dir)
			commit, err := repo.Checkout(rev, dir, gitsource.Limits{})
			if err != nil {
				return nil, fail(err)
			}
			sides[i].root, sides[i].message = dir, commit.Message
			sides[i].path = filepath.Join(dir, filepath.FromSlash(fl.path))
		}
	} else {
		for i, dir := range []string{base, head} {
			if fl.path != "" {
				sides[i].root, sides[i].path = dir, filepath.Join(dir, filepath.FromSlash(fl.path))
			} else {
				sides[i].path = dir // root: enclosing repository
			}
		}
	}

	nodes := make([][]reconcile.NodeSpec, 2)
	var problems []string // "side: file:line: message"
	for i, s := range sides {
		if fl.repo != "" {
			// git does not keep empty directories: a revision that
			// deleted every file of the fleet has no fleet path.
			if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		_, n, err := loadFleet(ctx, s.root, s.path, mode)
		if err != nil {
			if printProblems(cmd.ErrOrStderr(), s.name+": ", err) {
				var list reconcile.ErrorList
				errors.As(err, &list)
				for _, e := range list {
					problems = append(problems, s.name+": "+e.Error())
				}
				continue
			}
			return nil, fail(fmt.Errorf("%s: %w", s.name, err))
		}
		nodes[i] = n
	}
	if len(problems) > 0 {
		return nil, fail(&invalidFleetError{problems: problems})
	}

	p := reconcile.ComputePlan(nodes[1], nodes[0])
	out := cmd.OutOrStdout()
	if err := p.WriteText(out); err != nil {
		return nil, fail(err)
	}
	var breaker error
	if fl.repo != "" {
		if breaker = reconcile.CheckBreaker(p, sides[1].message, fl.maxShare); breaker != nil {
			fmt.Fprintf(out, "\n! %v\n", breaker)
		} else if reconcile.CheckBreaker(p, "", fl.maxShare) != nil {
			n, _ := reconcile.AllowedRemovals(sides[1].message)
			fmt.Fprintf(out, "\nbreaker: allowed by the commit's trailer \"%s: %d\"\n", reconcile.AllowRemovalTrailer, n)
		}
	}
	if breaker != nil {
		return p, &exitError{code: planExitBreaker, err: fmt.Errorf("plan: %s: %w", p.Summary(), breaker)}
	}
	if p.Empty() {
		return p, nil
	}
	return p, &exitError{code: planExitChanges, err: fmt.Errorf("plan: %s", p.Summary())}
}

// invalidFleetError is a plan refused because a side has invalid
// declarations (each already printed as "side: file:line: message").
type invalidFleetError struct{ problems []string }

func (e *invalidFleetError) Error() string { return "plan: invalid fleet declarations" }

// planStatusContext is the commit-status context of `atoll plan --post-status`.
const planStatusContext = "atoll/plan"

// defaultPlanStatusTimeout bounds posting the plan's status.
const defaultPlanStatusTimeout = 30 * time.Second

// planStatusFlags are the flags for posting the plan as a commit status.
type planStatusFlags struct {
	post    bool
	repoURL string
	timeout time.Duration
	commitStatusOptions
}

func (o *planStatusFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.post, "post-status", false, "post the plan as a commit status (context "+planStatusContext+") on HEAD's commit (needs --repo)")
	f.StringVar(&o.repoURL, "repo-url", "", "URL of the fleet repository on the git host, for --post-status (default: the origin remote of --repo)")
	f.DurationVar(&o.timeout, "status-timeout", defaultPlanStatusTimeout, "how long posting the plan's status may take")
	o.commitStatusOptions.addFlags(f)
}

// runPlanPostingStatus runs the plan and posts its outcome on HEAD's
// commit: success with the summary when the plan could be computed and
// Atoll would apply it, failure with the breaker's reason when it would
// refuse it, failure with the error otherwise. The post is synchronous;
// when it fails the exit code is planExitError.
func runPlanPostingStatus(cmd *cobra.Command, fl planFlags, base, head string) error {
	fail := func(err error) error { return &exitError{code: planExitError, err: err} }
	if fl.repo == "" {
		return fail(errors.New("--post-status needs --repo"))
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// Resolve HEAD and the writer first: a plan whose status cannot be
	// posted should say so before printing anything.
	repo, err := gitsource.OpenLocal(fl.repo)
	if err != nil {
		return fail(err)
	}
	commit, err := repo.Resolve(head)
	if err != nil {
		return fail(err)
	}
	sha := commit.Hash.String()
	writer, cleanup, err := fl.status.writer(ctx, repo)
	if err != nil {
		return fail(err)
	}
	defer cleanup()

	p, planErr := runPlan(cmd, fl, base, head)
	st := commitstatus.Status{Revision: sha, Context: planStatusContext}
	var breaker *reconcile.BreakerError
	switch code := exitCode(planErr); {
	case errors.As(planErr, &breaker):
		// Atoll would refuse the revision: the check fails until the
		// commit carries the trailer.
		st.State, st.Description = commitstatus.StateFailure, breaker.Error()
	case planErr == nil || code == planExitChanges:
		st.State, st.Description = commitstatus.StateSuccess, "no node changes"
		if !p.Empty() {
			st.Description = p.Summary()
		}
	default:
		st.State, st.Description = commitstatus.StateFailure, planFailureDescription(planErr)
	}

	pctx, cancel := context.WithTimeout(ctx, fl.status.timeout)
	defer cancel()
	if err := writer.Report(pctx, st); err != nil {
		return fail(errors.Join(planErr, fmt.Errorf("post %s status on %s: %w", planStatusContext, shortSHA(sha), err)))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "posted %s %s on %s: %s\n", planStatusContext, st.State, shortSHA(sha), st.Description)
	return planErr
}

// writer returns the commit-status writer for the repository at repo:
// the provider chosen from the flags, else guessed from --repo-url or the
// origin remote.
func (o *planStatusFlags) writer(ctx context.Context, repo *gitsource.LocalRepo) (w commitstatus.Reporter, cleanup func(), err error) {
	url := o.repoURL
	if url == "" {
		if url, err = repo.RemoteURL("origin"); err != nil {
			return nil, nil, fmt.Errorf("find the repository URL for --post-status (set --repo-url): %w", err)
		}
	}
	token, err := commitstatus.LoadToken(o.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	notesDir, err := os.MkdirTemp("", "atoll-plan-notes-")
	if err != nil {
		return nil, nil, fmt.Errorf("commit statuses: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(notesDir) }
	w, _, err = commitstatus.New(commitstatus.Config{
		RepoURL:   url,
		Provider:  commitstatus.Provider(o.provider),
		StatusURL: o.url,
		Token:     token,
		Notes:     commitstatus.NotesConfig{Remote: gitsource.GitConfig{URL: url, Timeout: o.timeout}, Dir: notesDir},
		Timeout:   o.timeout,
	})
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("commit statuses: %w", err)
	}
	return w, cleanup, nil
}

// planFailureDescription is the status description of a failed plan: the
// error, and for invalid declarations the first problem as file:line.
func planFailureDescription(err error) string {
	var inv *invalidFleetError
	if errors.As(err, &inv) && len(inv.problems) > 0 {
		d := "invalid fleet declarations: " + inv.problems[0]
		if n := len(inv.problems) - 1; n > 0 {
			d += fmt.Sprintf(" (and %d more)", n)
		}
		return d
	}
	return err.Error()
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
