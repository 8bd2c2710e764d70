package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/spf13/cobra"
)

// Exit codes of `atoll plan`, like `terraform plan -detailed-exitcode`.
const (
	planExitChanges = 1
	planExitError   = 2
)

type planFlags struct {
	repo, path, mode string
	maxShare         float64
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
(commits, branches, tags) of that git repository, read with git archive;
then HEAD's commit message is also checked against the mass-removal
breaker (trailer Atoll-Allow-Removal: N).

Exit code: 0 no changes, 1 changes, 2 error.`,
		Example: `  atoll plan --repo . --path overlays/prod origin/main HEAD
  atoll plan --mode watch examples/fleet/overlays/dev examples/fleet/overlays/prod`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &exitError{code: planExitError, err: fmt.Errorf("plan needs BASE and HEAD, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd, fl, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&fl.repo, "repo", "", "git repository: BASE and HEAD are revisions of it")
	cmd.Flags().StringVar(&fl.path, "path", "", "fleet path inside the repository (default: the repository root with --repo; BASE and HEAD themselves without)")
	cmd.Flags().StringVar(&fl.mode, "mode", "git", "source mode: git (credentials must be secretRef) or watch (path allowed)")
	cmd.Flags().Float64Var(&fl.maxShare, "max-removal-share", reconcile.DefaultMaxRemovalShare, "breaker: share of live nodes a revision may remove without the trailer (--repo only)")
	return cmd
}

func runPlan(cmd *cobra.Command, fl planFlags, base, head string) error {
	fail := func(err error) error { return &exitError{code: planExitError, err: err} }
	mode, err := parseSourceMode(fl.mode)
	if err != nil {
		return fail(err)
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
		for i, rev := range []string{base, head} {
			dir, msg, cleanup, err := checkoutRevision(ctx, fl.repo, rev)
			if err != nil {
				return fail(err)
			}
			defer cleanup()
			sides[i].root, sides[i].message = dir, msg
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
	var invalid bool
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
				invalid = true
				continue
			}
			return fail(fmt.Errorf("%s: %w", s.name, err))
		}
		nodes[i] = n
	}
	if invalid {
		return fail(errors.New("plan: invalid fleet declarations"))
	}

	p := reconcile.ComputePlan(nodes[1], nodes[0])
	out := cmd.OutOrStdout()
	if err := p.WriteText(out); err != nil {
		return fail(err)
	}
	if fl.repo != "" {
		if err := reconcile.CheckBreaker(p, sides[1].message, fl.maxShare); err != nil {
			fmt.Fprintf(out, "\n! %v\n", err)
		} else if reconcile.CheckBreaker(p, "", fl.maxShare) != nil {
			n, _ := reconcile.AllowedRemovals(sides[1].message)
			fmt.Fprintf(out, "\nbreaker: allowed by the commit's trailer \"%s: %d\"\n", reconcile.AllowRemovalTrailer, n)
		}
	}
	if p.Empty() {
		return nil
	}
	return &exitError{code: planExitChanges, err: fmt.Errorf("plan: %s", p.Summary())}
}
