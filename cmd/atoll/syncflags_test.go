package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/spf13/cobra"
)

// TestSyncFlags: every command that runs virtual nodes takes --workers,
// --qps and --burst, and the fleet runtime hands them to its manager.
func TestSyncFlags(t *testing.T) {
	for _, cmd := range []*cobra.Command{newRunCommand(), newWatchCommand(), newNodeCommand()} {
		if err := cmd.Flags().Parse([]string{"--workers", "5", "--qps", "7", "--burst", "9"}); err != nil {
			t.Errorf("atoll %s: %v", cmd.Name(), err)
		}
	}
	rt := &fleetRuntime{sync: syncOptions{workers: 5, qps: 7, burst: 9}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if c := rt.managerConfig(); c.Workers != 5 || c.QPS != 7 || c.Burst != 9 {
		t.Errorf("manager config workers=%d qps=%v burst=%d, want 5, 7, 9", c.Workers, c.QPS, c.Burst)
	}
}
