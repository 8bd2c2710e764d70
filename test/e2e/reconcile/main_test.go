// Package reconcile_test runs `atoll watch` and `atoll run` against the
// local test bed (a master and two remotes made of real Kubernetes parts)
// and a real git http-backend, and checks what issue 6 promises.
package reconcile_test

import (
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/test/testenv"
)

var (
	env      *testenv.Env
	master   kubernetes.Interface
	atollBin string
	// remoteKubeconfig is each remote's admin kubeconfig, by cluster name.
	remoteKubeconfig = map[string]string{}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var err error
	env, err = testenv.Start(ctx, testenv.Options{Remotes: 2, NodesPerRemote: 2, Log: os.Stderr})
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
	if master, err = env.Master.Clientset(); err != nil {
		log.Print(err)
		return 1
	}
	for _, r := range env.Remotes {
		remoteKubeconfig[r.Name] = r.Kubeconfig
	}
	atollBin = filepath.Join(env.Dir, "atoll")
	build := exec.CommandContext(ctx, "go", "build", "-o", atollBin, "github.com/atoll-dev/atoll/cmd/atoll")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Printf("build atoll: %v", err)
		return 1
	}
	return m.Run()
}
