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
	fresh, err := fleettest.RemoteIdentity(ctx, remote, t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	good, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range kc.AuthInfos {
		auth.Token = "revoked"
	}
	revoked, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fleettest.SecretName(remote.Name), Namespace: ns},
		Data:       map[string][]byte{reconcile.DefaultSecretKey: revoked},
	}
	if _, err := master.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, remote.Name+".yaml"), fleettest.ClusterYAML(remote.Name, "secret:"+secret.Name))
	fleettest.StartAtoll(t, env, atollBin, "credentials", "watch", "--dir", dir, "--kubeconfig", env.Master.Kubeconfig, "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")

	testenv.WaitFor(t, time.Minute, "the node registered, NotReady: its token is refused", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, remote.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return !fleettest.IsNodeReady(n), nil
	})
	// It stays NotReady while the Secret holds the revoked token.
	if ready, _ := fleettest.NodeReady(ctx, master, remote.Name); ready {
		t.Fatal("the node is Ready with a revoked token")
	}

	s, err := master.CoreV1().Secrets(ns).Get(ctx, secret.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[reconcile.DefaultSecretKey] = good
	if _, err := master.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "the node Ready with the new token", func(ctx context.Context) (bool, error) {
		ready, err := fleettest.NodeReady(ctx, master, remote.Name)
		return ready, fmt.Errorf("not Ready yet: %v", err)
	})
}
