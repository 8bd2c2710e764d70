package fleettest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/atoll-dev/atoll/deploy"
	"github.com/atoll-dev/atoll/test/testenv"
)

// RemoteIdentity applies deploy/remote to a remote cluster, as `atoll
// cluster add` does, and writes a kubeconfig for the ServiceAccount it
// binds (atoll-system/atoll), with a token valid for ttl, to dir. Atoll
// run with it has exactly the rights a real remote gives it, so a missing
// verb fails a test.
func RemoteIdentity(ctx context.Context, remote *testenv.Cluster, dir string, ttl time.Duration) (string, error) {
	cs, err := remote.Clientset()
	if err != nil {
		return "", err
	}
	account, err := deploy.ApplyRemote(ctx, remote.Config)
	if err != nil {
		return "", fmt.Errorf("%s: %w", remote.Name, err)
	}
	tr, err := deploy.MintToken(ctx, cs, account, ttl)
	if err != nil {
		return "", fmt.Errorf("%s: %w", remote.Name, err)
	}
	ca, err := os.ReadFile(remote.CAFile)
	if err != nil {
		return "", err
	}
	data, err := deploy.TokenKubeconfig(remote.Name, remote.Server, ca, "", tr.Status.Token)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, remote.Name+"-atoll.kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
