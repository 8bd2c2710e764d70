package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ApplyRemote applies RemoteRBAC to the cluster of cfg (server-side,
// field manager atoll) and returns its ServiceAccount as namespace/name.
func ApplyRemote(ctx context.Context, cfg *rest.Config) (string, error) {
	objs, err := Objects(RemoteRBAC)
	if err != nil {
		return "", fmt.Errorf("deploy/remote: %w", err)
	}
	if err := Apply(ctx, cfg, objs); err != nil {
		return "", fmt.Errorf("deploy/remote: %w", err)
	}
	for _, u := range objs {
		if u.GetKind() == "ServiceAccount" {
			return u.GetNamespace() + "/" + u.GetName(), nil
		}
	}
	return "", errors.New("deploy/remote declares no ServiceAccount")
}

// Objects decodes a manifest of YAML documents.
func Objects(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// Apply applies objs, in order, to the cluster of cfg (server-side, field
// manager atoll, taking over fields others set).
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) error {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", gvk, err)
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err = dc.Resource(m.Resource).Namespace(u.GetNamespace()).Apply(cctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "atoll", Force: true})
		cancel()
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// MintToken requests a token of ttl for the ServiceAccount namespace/name.
func MintToken(ctx context.Context, cs kubernetes.Interface, account string, ttl time.Duration) (*authenticationv1.TokenRequest, error) {
	ns, name, ok := strings.Cut(account, "/")
	if !ok {
		return nil, fmt.Errorf("service account %q: want namespace/name", account)
	}
	secs := int64(ttl / time.Second)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(cctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", account, err)
	}
	return tr, nil
}

// TokenKubeconfig is a self-contained kubeconfig: server, CA data (and
// the TLS server name, when set), token.
func TokenKubeconfig(name, server string, ca []byte, serverName, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca, TLSServerName: serverName}
	cfg.AuthInfos["atoll"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["atoll"] = &clientcmdapi.Context{Cluster: name, AuthInfo: "atoll"}
	cfg.CurrentContext = "atoll"
	return clientcmd.Write(*cfg)
}
