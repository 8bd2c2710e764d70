package fleettest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/atoll-dev/atoll/test/testenv"
)

// remoteRBAC is deploy/remote/rbac.yaml, what a remote cluster grants Atoll.
func remoteRBAC() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "remote", "rbac.yaml")
}

// RemoteIdentity applies deploy/remote/rbac.yaml to a remote cluster and
// writes a kubeconfig for the ServiceAccount it binds (atoll-system/atoll),
// with a token valid for ttl, to dir. Atoll run with it has exactly the
// rights a real remote gives it, so a missing verb fails a test.
func RemoteIdentity(ctx context.Context, remote *testenv.Cluster, dir string, ttl time.Duration) (string, error) {
	cs, err := remote.Clientset()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(remoteRBAC())
	if err != nil {
		return "", err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var saNamespace, saName string
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", remoteRBAC(), err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return "", fmt.Errorf("decode %s: %w", remoteRBAC(), err)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = cs.CoreV1().Namespaces().Create(cctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			saNamespace, saName = o.Namespace, o.Name
			_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(cctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(cctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(cctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("%s: unexpected %T", remoteRBAC(), obj)
		}
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("apply %s to %s: %w", remoteRBAC(), remote.Name, err)
		}
	}
	if saName == "" {
		return "", fmt.Errorf("%s declares no ServiceAccount", remoteRBAC())
	}
	secs := int64(ttl / time.Second)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := cs.CoreV1().ServiceAccounts(saNamespace).CreateToken(cctx, saName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s in %s: %w", saNamespace, saName, remote.Name, err)
	}
	ca, err := os.ReadFile(remote.CAFile)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[remote.Name] = &clientcmdapi.Cluster{Server: remote.Server, CertificateAuthorityData: ca}
	cfg.AuthInfos["atoll"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["atoll"] = &clientcmdapi.Context{Cluster: remote.Name, AuthInfo: "atoll"}
	cfg.CurrentContext = "atoll"
	path := filepath.Join(dir, remote.Name+"-atoll.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, os.Chmod(path, 0o600)
}
