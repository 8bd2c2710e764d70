package testenv

import (
	"context"
	"debug/elf"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Main is the body of an end-to-end package's TestMain: it starts one bed
// with opts (logging progress to stderr), calls setup, runs the tests, calls
// the teardown setup returned, and stops the bed. It returns the exit code.
//
//	func TestMain(m *testing.M) {
//		os.Exit(testenv.Main(m, testenv.Options{Remotes: 2}, setup))
//	}
func Main(m *testing.M, opts Options, setup func(ctx context.Context, env *Env) (teardown func(), err error)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	env, err := Start(ctx, opts)
	if err != nil {
		log.Printf("start test bed: %v", err)
		return 1
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.Stop(stopCtx); err != nil {
			log.Printf("stop test bed: %v", err)
		}
	}()
	if setup != nil {
		teardown, err := setup(ctx, env)
		if teardown != nil {
			defer teardown()
		}
		if err != nil {
			log.Printf("set up: %v", err)
			return 1
		}
	}
	return m.Run()
}

// AtollBuildTags are the build tags Atoll is built with (the Makefile's
// GOFLAGS has the same): kustomize without its Go plugin loader, whose
// import of package plugin would double the code mapped into every Atoll.
const AtollBuildTags = "kustomize_disable_go_plugin_support"

// BuildAtoll builds the atoll command into dir and returns its path. It
// fails if the binary links package plugin, so a dependency that brings it
// back is caught where the figures of test/bench would silently worsen.
func BuildAtoll(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "atoll")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", AtollBuildTags, "-o", bin, "github.com/atoll-dev/atoll/cmd/atoll")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build atoll: %w", err)
	}
	if err := checkNoGoPlugins(bin); err != nil {
		return "", err
	}
	return bin, nil
}

// checkNoGoPlugins fails if the executable links package plugin.
func checkNoGoPlugins(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("symbols of %s: %w", bin, err)
	}
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "plugin.") {
			return fmt.Errorf("%s links package plugin (every symbol exported, no method pruning); find the importer with `go list -deps -tags %s ./cmd/atoll`", bin, AtollBuildTags)
		}
	}
	return nil
}

// WaitFor polls cond every 200ms, each call bounded to 10 s, until it is
// true, and fails t when timeout passes first, naming what it waited for and
// the last error cond returned.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ok, err := cond(cctx)
		if err != nil && ctx.Err() == nil {
			last = err // not the error of a call the timeout cut short
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	}
}

// Context returns a context for one test's API calls, cancelled when the test
// ends and at most 5 minutes long.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
