package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCommand() *cobra.Command {
	var mode, root string
	cmd := &cobra.Command{
		Use:   "validate PATH",
		Short: "Check a fleet directory: render, decode and validate it, without cluster access",
		Long: `Validate renders the fleet at PATH (kustomize when PATH holds a
kustomization, else every *.yaml under it), decodes every Cluster and
PlacementPolicy strictly and validates them. Every problem is printed as
"file:line: field: message"; the exit code is 0 when the fleet is valid,
1 otherwise. Meant for a fleet repository's own CI.

The repository root (nothing outside it is read) is --root, else the
closest directory above PATH holding .git, else PATH itself.`,
		Example: `  atoll validate overlays/prod
  atoll validate --mode watch overlays/dev`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseSourceMode(mode)
			if err != nil {
				return err
			}
			f, nodes, err := loadFleet(cmd.Context(), root, args[0], m)
			if err != nil {
				if printProblems(cmd.ErrOrStderr(), "", err) {
					return fmt.Errorf("%s is invalid", args[0])
				}
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is valid: %d %s, %d placement %s\n", args[0],
				len(nodes), pluralNoun(len(nodes), "cluster", "clusters"), len(f.Policies), pluralNoun(len(f.Policies), "policy", "policies"))
			return err
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "git", "source mode: git (credentials must be secretRef) or watch (path allowed)")
	cmd.Flags().StringVar(&root, "root", "", "repository root; default: the closest directory above PATH holding .git, else PATH")
	return cmd
}

func pluralNoun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
