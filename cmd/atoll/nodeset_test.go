package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/atoll-dev/atoll/gitsource"
	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/vnode"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: r, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: r, user: {token: abc}}]
contexts: [{name: r, context: {cluster: r, user: r}}]
current-context: r
`

func TestManagerNodesSpec(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: "atoll-system"}, Data: map[string][]byte{"kubeconfig": []byte(testKubeconfig)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "nokey", Namespace: "atoll-system"}, Data: map[string][]byte{"other": nil}},
	)
	n := &managerNodes{master: client, namespace: "atoll-system", timeout: time.Second}
	cpu := resource.MustParse("4")
	tests := []struct {
		name     string
		cred     reconcile.Credentials
		wantHost string
		wantErr  error
	}{
		{name: "secret", cred: reconcile.Credentials{SecretRef: &reconcile.SecretKeyRef{Name: "good"}}, wantHost: "https://127.0.0.1:6443"},
		{name: "path", cred: reconcile.Credentials{Path: path}, wantHost: "https://127.0.0.1:6443"},
		{name: "missing secret", cred: reconcile.Credentials{SecretRef: &reconcile.SecretKeyRef{Name: "absent"}}, wantErr: reconcile.ErrCredentials},
		{name: "missing key", cred: reconcile.Credentials{SecretRef: &reconcile.SecretKeyRef{Name: "nokey"}}, wantErr: reconcile.ErrCredentials},
		{name: "missing file", cred: reconcile.Credentials{Path: filepath.Join(dir, "absent")}, wantErr: reconcile.ErrCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := reconcile.NodeSpec{
				Name: "r", Labels: map[string]string{"a": "b"}, Cordon: true,
				Taints:      []reconcile.Taint{{Key: "k", Value: "v", Effect: reconcile.TaintEffectNoSchedule}},
				Capacity:    reconcile.Capacity{CPU: &cpu},
				Namespaces:  reconcile.NamespacePolicy{Mode: reconcile.NamespaceModePrefix, Prefix: "hub-"},
				Credentials: tt.cred,
			}
			got, _, err := n.vnodeSpec(context.Background(), spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Remote.Host != tt.wantHost || got.Labels["a"] != "b" || !got.Cordon ||
				len(got.Taints) != 1 || got.Taints[0].Effect != corev1.TaintEffectNoSchedule ||
				got.Capacity.Cpu().String() != "4" || got.NamespaceMode != vnode.NamespacePrefix || got.NamespacePrefix != "hub-" {
				t.Errorf("spec = %+v", got)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("vnode rejects the spec: %v", err)
			}
		})
	}
}

// TestSecretKubeconfigSelfContained: a kubeconfig Secret may not run a
// program on Atoll's machine (unless allowed) nor read a file there.
func TestSecretKubeconfigSelfContained(t *testing.T) {
	withUser := func(user string) []byte {
		return []byte(strings.Replace(testKubeconfig, "user: {token: abc}", "user: "+user, 1))
	}
	exec := withUser("{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id], interactiveMode: Never}}")
	client := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: "atoll-system"}, Data: map[string][]byte{"kubeconfig": exec}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token-file", Namespace: "atoll-system"},
			Data: map[string][]byte{"kubeconfig": withUser("{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cert-file", Namespace: "atoll-system"},
			Data: map[string][]byte{"kubeconfig": withUser("{client-certificate: /etc/atoll/tls.crt, client-key: /etc/atoll/tls.key}")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca-file", Namespace: "atoll-system"},
			Data: map[string][]byte{"kubeconfig": []byte(strings.Replace(testKubeconfig, `server: "https://127.0.0.1:6443"`, `server: "https://127.0.0.1:6443", certificate-authority: /etc/ssl/ca.pem`, 1))}},
	)
	tests := []struct {
		secret    string
		allowExec bool
		wantErr   string // "" : accepted
	}{
		{secret: "exec", wantErr: `runs the credential plugin "/bin/sh", refused (start Atoll with --allow-exec-credentials`},
		{secret: "exec", allowExec: true},
		{secret: "token-file", allowExec: true, wantErr: "tokenFile names the file /var/run/secrets/kubernetes.io/serviceaccount/token, refused"},
		{secret: "cert-file", wantErr: "client-certificate names the file /etc/atoll/tls.crt, refused"},
		{secret: "ca-file", wantErr: "certificate-authority names the file /etc/ssl/ca.pem, refused"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s, exec allowed %v", tt.secret, tt.allowExec), func(t *testing.T) {
			n := &managerNodes{master: client, namespace: "atoll-system", timeout: time.Second, allowExec: tt.allowExec}
			spec := reconcile.NodeSpec{Name: "r", Credentials: reconcile.Credentials{SecretRef: &reconcile.SecretKeyRef{Name: tt.secret}}}
			_, _, err := n.vnodeSpec(context.Background(), spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, reconcile.ErrCredentials) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrCredentials containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "secret atoll-system/"+tt.secret) {
				t.Errorf("err = %v does not name the Secret", err)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		in   string
		want gitsource.Ref
	}{
		{"main", gitsource.Ref{Branch: "main"}},
		{"refs/heads/release", gitsource.Ref{Branch: "release"}},
		{"refs/tags/v1.2.0", gitsource.Ref{Tag: "v1.2.0"}},
		{sha, gitsource.Ref{Commit: sha}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRef(tt.in); got != tt.want {
				t.Errorf("parseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFleetSourceMarksSkippedCommitsSuperseded(t *testing.T) {
	src := fakeGitsource{snap: gitsource.Snapshot{Revision: "c3", Dir: "/d", Message: "m",
		Commits: []gitsource.Commit{{Hash: "c3"}, {Hash: "c2"}, {Hash: "c1"}}}}
	got, err := fleetSource{src}.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != "c3" || got.Dir != "/d" || got.Message != "m" || len(got.Superseded) != 2 || got.Superseded[0] != "c2" {
		t.Errorf("snapshot = %+v", got)
	}
}

type fakeGitsource struct{ snap gitsource.Snapshot }

func (f fakeGitsource) Fetch(context.Context) (gitsource.Snapshot, error) { return f.snap, nil }
func (f fakeGitsource) Changes() <-chan struct{}                          { return nil }
