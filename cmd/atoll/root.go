package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code other than 1 (for example `plan`,
// whose exit code says whether anything changed).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "atoll",
		Short:         "Run many Kubernetes clusters as one, declared in git",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand())
	root.AddCommand(newNodeCommand())
	root.AddCommand(newValidateCommand(), newPlanCommand())
	root.AddCommand(newRunCommand(), newWatchCommand(), newStatusCommand(), newClusterCommand())
	return root
}
