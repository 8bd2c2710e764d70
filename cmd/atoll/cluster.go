package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/atoll-dev/atoll/deploy"
	"github.com/atoll-dev/atoll/reconcile"
)

// Annotations on a kubeconfig Secret that `atoll cluster add` wrote: the
// token it holds was minted for a ServiceAccount of the remote, and Atoll
// renews it before it expires.
const (
	annotationTokenAccount  = "atoll.dev/token-service-account" // namespace/name in the remote
	annotationTokenIssued   = "atoll.dev/token-issued"          // RFC 3339
	annotationTokenExpires  = "atoll.dev/token-expires"         // RFC 3339
	annotationTokenRejected = "atoll.dev/token-rejected"        // why the last renewal was refused
)

// defaultTokenTTL is how long a token `atoll cluster add` mints lasts.
const defaultTokenTTL = 30 * 24 * time.Hour

type clusterAddOptions struct {
	masterOptions
	remoteKubeconfig string
	remoteContext    string
	server           string
	namespaceMode    string
	namespacePrefix  string
	// namespaces, when set, restrict Atoll to these remote namespaces
	// (deploy/remote-namespaced), its identity in identityNamespace.
	namespaces        []string
	identityNamespace string
	tokenTTL          time.Duration
}

func newClusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Join remote clusters",
	}
	cmd.AddCommand(newClusterAddCommand())
	return cmd
}

func newClusterAddCommand() *cobra.Command {
	var o clusterAddOptions
	cmd := &cobra.Command{
		Use:   "add NAME --remote-kubeconfig FILE",
		Short: "Join a remote cluster: its Atoll identity, a kubeconfig Secret in the master, the Cluster to commit",
		Long: `Join a remote cluster to the fleet, with an administrator's kubeconfig of
that cluster (--remote-kubeconfig), which is used here only:

1. applies deploy/remote there (namespace atoll-system, ServiceAccount
   atoll, its least-privilege roles), or, with --namespaces, the
   namespaced deploy/remote-namespaced: the ServiceAccount atoll in one of
   those namespaces (--identity-namespace, default the first) and a Role
   in each, nothing cluster-wide; the namespaces must exist, and the
   Cluster printed is restricted to them (spec.namespaces.restrictTo);
2. mints a token for that ServiceAccount (TokenRequest, --token-ttl) and
   writes a kubeconfig holding it, inline, to the Secret NAME-kubeconfig in
   Atoll's namespace of the master (--kubeconfig, --context, --namespace);
3. prints the Cluster declaration to commit to the fleet repository.

Atoll renews the token before it expires (when 80% of its lifetime has
passed), with the token itself; atoll status shows when the credentials
expire, or that the remote rejected their renewal. Running the command
again mints a new token.`,
		Example: `  atoll cluster add cern-001 --remote-kubeconfig cern-001-admin.kubeconfig > clusters/cern-001.yaml
  atoll cluster add gke-002 --remote-kubeconfig ~/.kube/config --remote-context gke-002 --namespace-mode Prefix --namespace-prefix hub-
  atoll cluster add lab-003 --remote-kubeconfig team-admin.kubeconfig --namespaces shop,blog`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterAdd(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.addFlags(cmd.Flags(), "warn")
	f := cmd.Flags()
	f.StringVar(&o.remoteKubeconfig, "remote-kubeconfig", "", "an administrator's kubeconfig of the remote cluster (required; used by this command only)")
	f.StringVar(&o.remoteContext, "remote-context", "", "context of --remote-kubeconfig (default: its current context)")
	f.StringVar(&o.server, "server", "", "the remote's API server URL as Atoll reaches it (default: the one in --remote-kubeconfig)")
	f.StringVar(&o.namespaceMode, "namespace-mode", string(reconcile.NamespaceModeSame), "where pods go in the remote: Same (the master namespace) or Prefix")
	f.StringVar(&o.namespacePrefix, "namespace-prefix", "", "the prefix of remote namespaces, with --namespace-mode Prefix")
	f.StringSliceVar(&o.namespaces, "namespaces", nil, "the remote namespaces Atoll may use, all existing: it gets Roles there only (default: cluster-wide rights)")
	f.StringVar(&o.identityNamespace, "identity-namespace", "", "with --namespaces, the one of them that holds Atoll's ServiceAccount (default: the first)")
	f.DurationVar(&o.tokenTTL, "token-ttl", defaultTokenTTL, "lifetime of the token (at least 10m; the remote may cap it)")
	_ = cmd.MarkFlagRequired("remote-kubeconfig")
	return cmd
}

// clusterYAML is the Cluster declaration `atoll cluster add` prints.
func clusterYAML(name, secret string, o clusterAddOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n  credentials:\n    secretRef: {name: %s}\n", name, secret)
	var ns []string
	if o.namespaceMode == string(reconcile.NamespaceModePrefix) {
		ns = append(ns, "mode: Prefix", "prefix: "+o.namespacePrefix)
	}
	if len(o.namespaces) > 0 {
		ns = append(ns, "restrictTo: ["+strings.Join(o.namespaces, ", ")+"]")
	}
	if len(ns) > 0 {
		fmt.Fprintf(&b, "  namespaces: {%s}\n", strings.Join(ns, ", "))
	}
	return b.String()
}

func runClusterAdd(ctx context.Context, o clusterAddOptions, name string, stdout, stderr io.Writer) error {
	if o.tokenTTL < 10*time.Minute {
		return fmt.Errorf("--token-ttl %s: at least 10m (the shortest token Kubernetes issues)", o.tokenTTL)
	}
	secretName := name + "-kubeconfig"
	decl := clusterYAML(name, secretName, o)
	if err := validateDeclaration(ctx, name, decl); err != nil {
		return err
	}
	switch {
	case o.identityNamespace != "" && len(o.namespaces) == 0:
		return errors.New("--identity-namespace: only with --namespaces")
	case o.identityNamespace == "" && len(o.namespaces) > 0:
		o.identityNamespace = o.namespaces[0]
	}
	remote, err := loadKubeconfig(o.remoteKubeconfig, o.remoteContext)
	if err != nil {
		return fmt.Errorf("--remote-kubeconfig: %w", err)
	}
	_, master, err := o.master()
	if err != nil {
		return err
	}
	manifest, apply := "deploy/remote", func() (string, error) { return deploy.ApplyRemote(ctx, remote) }
	if len(o.namespaces) > 0 {
		manifest = "deploy/remote-namespaced (namespaces " + strings.Join(o.namespaces, ", ") + ")"
		apply = func() (string, error) {
			return deploy.ApplyRemoteNamespaced(ctx, remote, o.identityNamespace, o.namespaces)
		}
	}
	account, err := apply()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "applied %s in %s: ServiceAccount %s\n", manifest, remote.Host, account)
	server := o.server
	if server == "" {
		server = remote.Host
	}
	ca, err := remoteCA(remote)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(remote)
	if err != nil {
		return err
	}
	tok, err := deploy.MintToken(ctx, cs, account, o.tokenTTL)
	if err != nil {
		return err
	}
	kubeconfig, err := deploy.TokenKubeconfig(name, server, ca, remote.TLSClientConfig.ServerName, tok.Status.Token)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: o.namespace, Labels: map[string]string{reconcile.LabelCluster: name}},
		Data:       map[string][]byte{reconcile.DefaultSecretKey: kubeconfig},
	}
	setTokenAnnotations(secret, account, time.Now(), tok.Status.ExpirationTimestamp.Time)
	if err := ensureNamespace(ctx, master, o.namespace); err != nil {
		return err
	}
	if err := putSecret(ctx, master, secret); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote Secret %s/%s (token expires %s); commit this Cluster to the fleet repository:\n",
		o.namespace, secretName, tok.Status.ExpirationTimestamp.Format(time.RFC3339))
	_, err = io.WriteString(stdout, decl)
	return err
}

// validateDeclaration checks the Cluster as a fleet would, before anything
// is changed anywhere.
func validateDeclaration(ctx context.Context, name, decl string) error {
	dir, err := os.MkdirTemp("", "atoll-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(decl), 0o600); err != nil {
		return err
	}
	if _, _, err := reconcile.Load(ctx, dir, ".", reconcile.WithMode(reconcile.ModeGit)); err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	return nil
}

// remoteCA returns the CA bundle a rest.Config trusts, as data.
func remoteCA(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 || cfg.CAFile == "" {
		return cfg.CAData, nil
	}
	b, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("the remote's CA: %w", err)
	}
	return b, nil
}

func setTokenAnnotations(s *corev1.Secret, account string, issued, expires time.Time) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[annotationTokenAccount] = account
	s.Annotations[annotationTokenIssued] = issued.UTC().Format(time.RFC3339)
	s.Annotations[annotationTokenExpires] = expires.UTC().Format(time.RFC3339)
	delete(s.Annotations, annotationTokenRejected)
}

// putSecret creates s, or updates the Secret of that name.
func putSecret(ctx context.Context, master kubernetes.Interface, s *corev1.Secret) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	secrets := master.CoreV1().Secrets(s.Namespace)
	_, err := secrets.Create(cctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *corev1.Secret
		if cur, err = secrets.Get(cctx, s.Name, metav1.GetOptions{}); err == nil {
			cur.Data, cur.Labels = s.Data, s.Labels
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			for _, k := range []string{annotationTokenAccount, annotationTokenIssued, annotationTokenExpires} {
				cur.Annotations[k] = s.Annotations[k]
			}
			delete(cur.Annotations, annotationTokenRejected)
			_, err = secrets.Update(cctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("write Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
