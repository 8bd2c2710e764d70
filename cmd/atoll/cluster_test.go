package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/atoll-dev/atoll/deploy"
)

func TestClusterDeclarationValid(t *testing.T) {
	for _, o := range []clusterAddOptions{
		{namespaceMode: "Same"},
		{namespaceMode: "Prefix", namespacePrefix: "hub-"},
		{namespaceMode: "Same", namespaces: []string{"shop", "blog"}},
		{namespaceMode: "Prefix", namespacePrefix: "hub-", namespaces: []string{"hub-shop"}},
	} {
		decl := clusterYAML("cern-001", "cern-001-kubeconfig", o)
		if err := validateDeclaration(context.Background(), "cern-001", decl); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
		if len(o.namespaces) > 0 && !strings.Contains(decl, "restrictTo: ["+strings.Join(o.namespaces, ", ")+"]") {
			t.Errorf("%+v: the declaration is not restricted to the namespaces:\n%s", o, decl)
		}
	}
	for what, o := range map[string]clusterAddOptions{
		"a kube- prefix":                   {namespaceMode: "Prefix", namespacePrefix: "kube-"},
		"kube-system among the namespaces": {namespaceMode: "Same", namespaces: []string{"shop", "kube-system"}},
		"a namespace outside the prefix":   {namespaceMode: "Prefix", namespacePrefix: "hub-", namespaces: []string{"shop"}},
	} {
		if err := validateDeclaration(context.Background(), "cern-001", clusterYAML("cern-001", "s", o)); err == nil {
			t.Errorf("%s was accepted", what)
		}
	}
	if err := validateDeclaration(context.Background(), "Bad_Name", clusterYAML("Bad_Name", "s", clusterAddOptions{namespaceMode: "Same"})); err == nil {
		t.Error("an invalid name was accepted")
	}
}

// TestNamespacedRemote: the namespaced deploy/remote-namespaced grants
// nothing cluster-wide and nothing outside the namespaces, and binds each
// namespace's Role to the one identity.
func TestNamespacedRemote(t *testing.T) {
	objs, err := deploy.NamespacedRemote("shop", []string{"shop", "blog"})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	for _, u := range objs {
		ns := u.GetNamespace()
		if ns != "shop" && ns != "blog" {
			t.Errorf("%s %s in namespace %q", u.GetKind(), u.GetName(), ns)
		}
		switch u.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding":
		default:
			t.Errorf("%s %s: only ServiceAccount, Role and RoleBinding are namespaced rights", u.GetKind(), u.GetName())
		}
		if u.GetKind() == "ServiceAccount" && ns != "shop" {
			t.Errorf("ServiceAccount in %s, want shop", ns)
		}
		if u.GetKind() == "Role" && u.GetName() == "atoll-remote" {
			roles[ns] = true
			rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
			for _, r := range rules {
				res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
				if slices.Contains(res, "namespaces") || slices.Contains(res, "nodes") {
					t.Errorf("the Role grants %v", res)
				}
			}
		}
		if u.GetKind() == "RoleBinding" {
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != "shop" || subjects[0].(map[string]any)["name"] != "atoll" {
				t.Errorf("RoleBinding %s/%s subjects %v, want shop/atoll", ns, u.GetName(), subjects)
			}
		}
	}
	if !roles["shop"] || !roles["blog"] {
		t.Errorf("atoll-remote Roles in %v, want shop and blog", roles)
	}
	if _, err := deploy.NamespacedRemote("tools", []string{"shop"}); err == nil {
		t.Error("an identity outside the namespaces was accepted")
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
