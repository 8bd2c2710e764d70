// Package gitea_test posts commit statuses to a real Gitea (built from the
// Go module proxy and cached by test/testenv) through the commitstatus
// writers, and reads them back through Gitea's API and the git CLI.
package gitea_test

import (
	"context"
	"log"
	"os"
	"testing"
	"time"

	"github.com/atoll-dev/atoll/test/testenv"
)

var gitea *testenv.Gitea

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "atoll-gitea-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(dir)
	gitea, err = testenv.StartGitea(ctx, dir)
	if err != nil {
		log.Printf("start gitea: %v", err)
		return 1
	}
	defer func() {
		if err := gitea.Stop(); err != nil {
			log.Printf("stop gitea: %v", err)
		}
	}()
	return m.Run()
}
