package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// Annotations `atoll cluster add` writes on the kubeconfig Secret.
const (
	tokenIssued  = "atoll.dev/token-issued"
	tokenExpires = "atoll.dev/token-expires"
)

// TestClusterAdd: `atoll cluster add` joins a remote from an admin
// kubeconfig; the Cluster it prints runs as a node; Atoll renews the token
// when it is due; a token the remote rejects shows in atoll status.
func TestClusterAdd(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	rc := env.Remotes[0]
	ctx := testenv.Context(t)

	start := time.Now()
	cmd := exec.CommandContext(ctx, atollBin, "cluster", "add", "joined", "--remote-kubeconfig", rc.Kubeconfig,
		"--kubeconfig", env.Master.Kubeconfig, "--namespace", ns, "--token-ttl", "10m")
	decl, err := cmd.Output()
	if err != nil {
		t.Fatalf("atoll cluster add: %v\n%s", err, stderrOf(err))
	}
	s, err := master.CoreV1().Secrets(ns).Get(ctx, "joined-kubeconfig", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expires, err := time.Parse(time.RFC3339, s.Annotations[tokenExpires])
	if err != nil || expires.Before(start.Add(9*time.Minute)) || expires.After(time.Now().Add(11*time.Minute)) {
		t.Fatalf("token expires %q (%v), want in about 10 minutes", s.Annotations[tokenExpires], err)
	}
	firstToken := secretToken(t, s)

	// The printed Cluster, with a second one whose token the remote rejects.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "joined.yaml"), string(decl))
	bogus := rejectedSecret(t, ns, s)
	writeFile(t, filepath.Join(dir, "bogus.yaml"), fleettest.ClusterYAML("bogus", "secret:"+bogus))
	fleettest.StartAtoll(t, env, atollBin, "watch-join", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info")
	testenv.WaitFor(t, time.Minute, "joined Ready", func(ctx context.Context) (bool, error) { return fleettest.NodeReady(ctx, master, "joined") })

	// Make the token due (80% of its life gone): Atoll renews it, the
	// node restarts with the new one and is Ready again.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := master.CoreV1().Secrets(ns).Get(ctx, "joined-kubeconfig", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Annotations[tokenIssued] = time.Now().Add(-9 * time.Minute).UTC().Format(time.RFC3339)
		s.Annotations[tokenExpires] = time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
		_, err = master.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "the token renewed", func(ctx context.Context) (bool, error) {
		s, err := master.CoreV1().Secrets(ns).Get(ctx, "joined-kubeconfig", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		e, _ := time.Parse(time.RFC3339, s.Annotations[tokenExpires])
		return secretToken(t, s) != firstToken && e.After(time.Now().Add(8*time.Minute)), nil
	})
	testenv.WaitFor(t, time.Minute, "joined Ready with the renewed token", func(ctx context.Context) (bool, error) {
		return fleettest.NodeReady(ctx, master, "joined")
	})

	// atoll status: when the joined cluster's credentials expire, and that
	// the bogus one's were rejected.
	testenv.WaitFor(t, time.Minute, "atoll status to show both clusters' credentials", func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, atollBin, "status", "-o", "json", "--kubeconfig", env.Master.Kubeconfig, "--namespace", ns).Output()
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, stderrOf(err))
		}
		var st struct {
			Clusters []struct {
				Name                string    `json:"name"`
				CredentialsExpire   time.Time `json:"credentialsExpire"`
				CredentialsRejected string    `json:"credentialsRejected"`
			} `json:"clusters"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return false, err
		}
		var joinedOK, bogusRejected bool
		for _, c := range st.Clusters {
			switch c.Name {
			case "joined":
				joinedOK = c.CredentialsExpire.After(time.Now().Add(8 * time.Minute))
			case "bogus":
				bogusRejected = c.CredentialsRejected != ""
			}
		}
		return joinedOK && bogusRejected, nil
	})
}

// rejectedSecret writes a kubeconfig Secret like good's, for the same
// remote, whose token the remote does not know, due for renewal.
func rejectedSecret(t *testing.T, ns string, good *corev1.Secret) string {
	t.Helper()
	kc, err := clientcmd.Load(good.Data[reconcile.DefaultSecretKey])
	if err != nil {
		t.Fatal(err)
	}
	kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo].Token = "not-a-token"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bogus-kubeconfig", Namespace: ns, Labels: map[string]string{reconcile.LabelCluster: "bogus"},
			Annotations: map[string]string{
				"atoll.dev/token-service-account": good.Annotations["atoll.dev/token-service-account"],
				tokenIssued:                       time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
				tokenExpires:                      time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
			}},
		Data: map[string][]byte{reconcile.DefaultSecretKey: data},
	}
	if _, err := master.CoreV1().Secrets(ns).Create(testenv.Context(t), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

func secretToken(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	kc, err := clientcmd.Load(s.Data[reconcile.DefaultSecretKey])
	if err != nil {
		t.Fatal(err)
	}
	return kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo].Token
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
