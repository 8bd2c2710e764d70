// Package reconcile_test runs `atoll watch` and `atoll run` against the
// local test bed (a master and two remotes made of real Kubernetes parts)
// and a real git http-backend, and checks what issue 6 promises.
package reconcile_test

import (
	"context"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

var (
	env      *testenv.Env
	master   kubernetes.Interface
	atollBin string
	// remoteKubeconfig is, by cluster name, a kubeconfig of each remote's
	// least-privilege identity for Atoll (deploy/remote).
	remoteKubeconfig = map[string]string{}
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Remotes: 2, NodesPerRemote: 2}, func(ctx context.Context, e *testenv.Env) (func(), error) {
		env = e
		var err error
		if master, err = env.Master.Clientset(); err != nil {
			return nil, err
		}
		for _, r := range env.Remotes {
			if remoteKubeconfig[r.Name], err = fleettest.RemoteIdentity(ctx, r, env.Dir, 2*time.Hour); err != nil {
				return nil, err
			}
		}
		atollBin, err = testenv.BuildAtoll(ctx, env.Dir)
		return nil, err
	}))
}
