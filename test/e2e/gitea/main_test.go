// Package gitea_test posts commit statuses to a real Gitea (built from the
// Go module proxy and cached by test/testenv) through the commitstatus
// writers, and reads them back through Gitea's API and the git CLI; and it
// runs the pull-request workflow (`atoll run` following a Gitea repository,
// `atoll plan --post-status` on a pull request) against the local test bed
// (a master and two remotes).
package gitea_test

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/test/testenv"
)

var (
	gitea    *testenv.Gitea
	env      *testenv.Env
	master   kubernetes.Interface
	atollBin string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Remotes: 2, NodesPerRemote: 2}, setup))
}

func setup(ctx context.Context, e *testenv.Env) (teardown func(), err error) {
	env = e
	if master, err = env.Master.Clientset(); err != nil {
		return nil, err
	}
	if atollBin, err = testenv.BuildAtoll(ctx, env.Dir); err != nil {
		return nil, err
	}
	dir := filepath.Join(env.Dir, "gitea")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if gitea, err = testenv.StartGitea(ctx, dir); err != nil {
		return nil, err
	}
	return func() {
		if err := gitea.Stop(); err != nil {
			log.Printf("stop gitea: %v", err)
		}
	}, nil
}
