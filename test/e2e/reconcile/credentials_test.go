package reconcile_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// TestRotatedCredentialsApplied: a cluster's kubeconfig Secret is replaced
// under an unchanged declaration (its token was revoked, a new one is
// issued): the node picks the new credentials up without a commit or a
// restart, and becomes Ready.
func TestRotatedCredentialsApplied(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	ctx := testenv.Context(t)
	remote := env.Remotes[0]
	good, revoked := rotatedKubeconfigs(t, remote)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fleettest.SecretName(remote.Name), Namespace: ns},
		Data:       map[string][]byte{reconcile.DefaultSecretKey: revoked},
	}
	if _, err := master.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, remote.Name+".yaml"), fleettest.ClusterYAML(remote.Name, "secret:"+secret.Name))
	fleettest.StartAtoll(t, env, atollBin, "credentials", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")

	waitRotation(t, remote.Name, func() {
		s, err := master.CoreV1().Secrets(ns).Get(ctx, secret.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Data[reconcile.DefaultSecretKey] = good
		if _, err := master.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRotatedKubeconfigFileApplied: the same in watch mode with a
// kubeconfig file: the file is rewritten, the declaration is not.
func TestRotatedKubeconfigFileApplied(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	remote := env.Remotes[1]
	good, revoked := rotatedKubeconfigs(t, remote)
	kubeconfig := filepath.Join(t.TempDir(), remote.Name+".kubeconfig")
	writeFile(t, kubeconfig, string(revoked))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, remote.Name+".yaml"), fleettest.ClusterYAML(remote.Name, kubeconfig))
	fleettest.StartAtoll(t, env, atollBin, "credentials-file", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")

	waitRotation(t, remote.Name, func() { writeFile(t, kubeconfig, string(good)) })
}

// rotatedKubeconfigs returns two kubeconfigs of the identity deploy/remote
// grants in remote: one with a valid token, one with a revoked one.
func rotatedKubeconfigs(t *testing.T, remote *testenv.Cluster) (good, revoked []byte) {
	t.Helper()
	fresh, err := fleettest.RemoteIdentity(testenv.Context(t), remote, t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if good, err = clientcmd.Write(*kc); err != nil {
		t.Fatal(err)
	}
	for _, auth := range kc.AuthInfos {
		auth.Token = "revoked"
	}
	if revoked, err = clientcmd.Write(*kc); err != nil {
		t.Fatal(err)
	}
	return good, revoked
}

// waitRotation waits for node to be registered NotReady (its token is
// refused), rotates the credentials, and waits for it to be Ready.
func waitRotation(t *testing.T, node string, rotate func()) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, "the node registered, NotReady: its token is refused", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return !fleettest.IsNodeReady(n), nil
	})
	if ready, _ := fleettest.NodeReady(testenv.Context(t), master, node); ready {
		t.Fatal("the node is Ready with a revoked token")
	}
	rotate()
	testenv.WaitFor(t, time.Minute, "the node Ready with the new token", func(ctx context.Context) (bool, error) {
		ready, err := fleettest.NodeReady(ctx, master, node)
		return ready, fmt.Errorf("not Ready yet: %v", err)
	})
}
