package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-dev/atoll/deploy"
)

func TestClusterDeclarationValid(t *testing.T) {
	for _, tt := range []struct{ mode, prefix string }{{"Same", ""}, {"Prefix", "hub-"}} {
		if err := validateDeclaration(context.Background(), "cern-001", clusterYAML("cern-001", "cern-001-kubeconfig", tt.mode, tt.prefix)); err != nil {
			t.Errorf("mode %s: %v", tt.mode, err)
		}
	}
	if err := validateDeclaration(context.Background(), "cern-001", clusterYAML("cern-001", "s", "Prefix", "kube-")); err == nil {
		t.Error("a kube- prefix was accepted")
	}
	if err := validateDeclaration(context.Background(), "Bad_Name", clusterYAML("Bad_Name", "s", "Same", "")); err == nil {
		t.Error("an invalid name was accepted")
	}
}

func TestTokenKubeconfigSelfContained(t *testing.T) {
	b, err := deploy.TokenKubeconfig("r", "https://10.0.0.1:6443", []byte("ca"), "", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if err := selfContained(b, false); err != nil {
		t.Errorf("the kubeconfig cluster add writes is refused: %v", err)
	}
}

func TestRenewDue(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{}}
	setTokenAnnotations(s, "atoll-system/atoll", issued, issued.Add(10*time.Hour))
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {7*time.Hour + 59*time.Minute, false}, {8 * time.Hour, true}, {11 * time.Hour, true}} {
		if got := renewDue(s, issued.Add(tt.at)); got != tt.want {
			t.Errorf("renewDue at +%s = %v, want %v", tt.at, got, tt.want)
		}
	}
	if renewDue(&corev1.Secret{}, issued) {
		t.Error("a Secret without the annotations is due")
	}
}

func TestCredentialsState(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		row  clusterRow
		want string
	}{
		{clusterRow{}, ""},
		{clusterRow{CredentialsExpire: now.Add(30 * 24 * time.Hour)}, "expire in 30d"},
		{clusterRow{CredentialsExpire: now.Add(90 * time.Minute)}, "expire in 1h30m0s"},
		{clusterRow{CredentialsExpire: now.Add(-time.Minute)}, "expired"},
		{clusterRow{CredentialsExpire: now.Add(time.Hour), CredentialsRejected: "401"}, "rejected"},
	} {
		if got := credentialsState(tt.row, now); got != tt.want {
			t.Errorf("credentialsState(%+v) = %q, want %q", tt.row, got, tt.want)
		}
	}
}

// TestKubeconfigContext: --context picks a context of the kubeconfig.
func TestKubeconfigContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://a.example:6443"}}, {name: b, cluster: {server: "https://b.example:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: a, user: u}}, {name: b, context: {cluster: b, user: u}}]
current-context: a
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	for ctx, want := range map[string]string{"": "https://a.example:6443", "b": "https://b.example:6443"} {
		cfg, err := loadKubeconfig(path, ctx)
		if err != nil || cfg.Host != want {
			t.Errorf("context %q: host %v (%v), want %s", ctx, cfg, err, want)
		}
	}
	if _, err := loadKubeconfig(path, "nope"); err == nil {
		t.Error("an unknown context was accepted")
	}
}
