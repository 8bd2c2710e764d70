package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	return serviceAccount(objs)
}

// ApplyRemoteNamespaced applies NamespacedRemote to the cluster of cfg, as
// ApplyRemote does deploy/remote, and returns its ServiceAccount.
func ApplyRemoteNamespaced(ctx context.Context, cfg *rest.Config, identityNamespace string, namespaces []string) (string, error) {
	objs, err := NamespacedRemote(identityNamespace, namespaces)
	if err != nil {
		return "", err
	}
	if err := Apply(ctx, cfg, objs); err != nil {
		return "", fmt.Errorf("deploy/remote-namespaced: %w", err)
	}
	return serviceAccount(objs)
}

// NamespacedRemote is deploy/remote-namespaced for a remote whose
// namespaces Atoll may use are namespaces (all existing): its identity in
// identityNamespace, one of them, and its Role, bound to that identity, in
// each. Nothing is cluster-scoped, and nothing reaches another namespace.
func NamespacedRemote(identityNamespace string, namespaces []string) ([]*unstructured.Unstructured, error) {
	if !slices.Contains(namespaces, identityNamespace) {
		return nil, fmt.Errorf("deploy/remote-namespaced: the identity's namespace %q is not one of the namespaces %v", identityNamespace, namespaces)
	}
	identity, err := Objects(RemoteNamespacedIdentity)
	if err != nil {
		return nil, fmt.Errorf("deploy/remote-namespaced: %w", err)
	}
	for _, u := range identity {
		u.SetNamespace(identityNamespace)
	}
	out := identity
	for _, ns := range namespaces {
		access, err := Objects(RemoteNamespacedAccess)
		if err != nil {
			return nil, fmt.Errorf("deploy/remote-namespaced: %w", err)
		}
		for _, u := range access {
			u.SetNamespace(ns)
		}
		out = append(out, access...)
	}
	// Every binding names the one identity.
	for _, u := range out {
		if u.GetKind() != "RoleBinding" {
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
		for _, s := range subjects {
			if m, ok := s.(map[string]any); ok {
				m["namespace"] = identityNamespace
			}
		}
		if err := unstructured.SetNestedSlice(u.Object, subjects, "subjects"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// serviceAccount returns the ServiceAccount objs declare, as namespace/name.
func serviceAccount(objs []*unstructured.Unstructured) (string, error) {
	for _, u := range objs {
		if u.GetKind() == "ServiceAccount" {
			return u.GetNamespace() + "/" + u.GetName(), nil
		}
	}
	return "", errors.New("the manifest declares no ServiceAccount")
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
