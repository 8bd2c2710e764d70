package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/admission"
	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/vnode"
)

// managerNodes is the reconciler's NodeSet on a vnode.Manager: it turns a
// declared node into a vnode.NodeSpec, reading the credentials from a
// Secret in Atoll's namespace or (watch mode) from a kubeconfig file. A node
// whose Secret or kubeconfig file changes is applied again
// (watchCredentials), so rotated credentials take effect without a commit.
type managerNodes struct {
	m         *vnode.Manager
	master    kubernetes.Interface
	namespace string
	timeout   time.Duration
	log       *slog.Logger
	// allowExec lets a kubeconfig Secret run a credential plugin.
	allowExec bool

	// mu serializes changes to nodes: the reconciler's and those of
	// changed credentials, so a re-application never undoes a newer spec.
	mu sync.Mutex
	// creds are, per running node, where its credentials were read from.
	creds map[string]credentialSource
	// rules, if set, collects the declared nodes' tolerateIn rules for
	// the admission webhook.
	rules *admission.RuleSet
}

// credentialSource says where a node's credentials were read from — a
// Secret at a resourceVersion, or a file with a modification time and size —
// and the declaration the node was applied with.
type credentialSource struct {
	spec    reconcile.NodeSpec
	secret  string // name of the Secret, or ""
	path    string // the kubeconfig file, or ""
	version string // the Secret's resourceVersion, or the file's fileVersion
}

// credentialFilePoll is how often kubeconfig files are looked at.
const credentialFilePoll = 2 * time.Second

var _ reconcile.NodeSet = (*managerNodes)(nil)

func (n *managerNodes) Add(ctx context.Context, spec reconcile.NodeSpec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.declared(spec.Name, admissionRules(spec))
	vs, version, err := n.vnodeSpec(ctx, spec)
	if err != nil {
		return err
	}
	err = n.m.Add(vs)
	if errors.Is(err, vnode.ErrNodeExists) {
		err = n.m.Update(vs)
	}
	n.applied(spec, version, err)
	return err
}

func (n *managerNodes) Update(ctx context.Context, spec reconcile.NodeSpec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.declared(spec.Name, admissionRules(spec))
	vs, version, err := n.vnodeSpec(ctx, spec)
	if err != nil {
		return err
	}
	err = n.m.Update(vs)
	if errors.Is(err, vnode.ErrNodeNotFound) {
		err = n.m.Add(vs)
	}
	n.applied(spec, version, err)
	return err
}

// declared records a declared node's tolerateIn rules, whether or not the
// node starts: they are the declaration's, and the webhook serves them.
func (n *managerNodes) declared(name string, rules []admission.Rule) {
	if n.rules != nil {
		n.rules.Set(name, rules)
	}
}

// applied remembers where a node's credentials came from once it runs with
// them. The caller holds n.mu.
func (n *managerNodes) applied(spec reconcile.NodeSpec, version string, err error) {
	c := spec.Credentials
	if err != nil || (c.SecretRef == nil && c.Path == "") {
		delete(n.creds, spec.Name)
		return
	}
	if n.creds == nil {
		n.creds = map[string]credentialSource{}
	}
	src := credentialSource{spec: spec, path: c.Path, version: version}
	if c.SecretRef != nil {
		src.secret, src.path = c.SecretRef.Name, ""
	}
	n.creds[spec.Name] = src
}

func (n *managerNodes) Remove(ctx context.Context, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.declared(name, nil)
	delete(n.creds, name)
	err := n.m.Remove(ctx, name)
	if !errors.Is(err, vnode.ErrNodeNotFound) {
		return err
	}
	// Not run by this process: delete what an earlier one left in the
	// master. Its remote is not cleaned up: which credentials reached it
	// went with its declaration.
	return vnode.DeleteVirtualNode(ctx, n.master, name, n.timeout)
}

// watchCredentials watches the Secrets of Atoll's namespace, and looks at
// the kubeconfig files of watch mode every credentialFilePoll, until ctx
// ends; every node whose credentials changed is applied again: it restarts
// with the new kubeconfig (its pods are adopted again), its declaration
// unchanged. (Files a kubeconfig file refers to are not looked at.) Every
// credentialFilePoll it also renews the tokens `atoll cluster add` wrote
// that are due.
func (n *managerNodes) watchCredentials(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(n.master, 0, informers.WithNamespace(n.namespace))
	inf := factory.Core().V1().Secrets().Informer()
	changed := func(obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			n.reapply(ctx, func(c credentialSource) bool { return c.secret == s.Name && c.version != s.ResourceVersion })
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, obj any) { changed(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	tick := time.NewTicker(credentialFilePoll)
	defer tick.Stop()
	tried := map[string]time.Time{} // renewals, by Secret
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			var secrets []*corev1.Secret
			for _, obj := range inf.GetStore().List() {
				if s, ok := obj.(*corev1.Secret); ok {
					secrets = append(secrets, s)
				}
			}
			n.renewTokens(ctx, secrets, tried)
			n.reapply(ctx, func(c credentialSource) bool {
				if c.path == "" {
					return false
				}
				v, err := fileVersion(c.path)
				return err == nil && v != c.version
			})
		}
	}
}

// reapply applies again the nodes whose credentials stale says changed.
func (n *managerNodes) reapply(ctx context.Context, stale func(credentialSource) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, c := range n.creds {
		if !stale(c) {
			continue
		}
		from := c.path
		if c.secret != "" {
			from = "secret " + n.namespace + "/" + c.secret
		}
		vs, version, err := n.vnodeSpec(ctx, c.spec)
		if err == nil {
			err = n.m.Update(vs)
		}
		if err != nil {
			// The reconciler reports the node; the next change retries.
			n.log.Error("apply changed credentials", "node", name, "from", from, "err", err)
			continue
		}
		n.log.Info("applied changed credentials", "node", name, "from", from)
		n.applied(c.spec, version, nil)
	}
}

// fileVersion identifies a file's content by its modification time and size.
func fileVersion(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size()), nil
}

func (n *managerNodes) List() []reconcile.NodeState {
	hs := n.m.Health()
	out := make([]reconcile.NodeState, len(hs))
	for i, h := range hs {
		out[i] = reconcile.NodeState{Name: h.Name, Ready: h.Ready, Reason: h.Reason, DelegatedPods: h.DelegatedPods, LastError: h.LastError}
	}
	return out
}

// vnodeSpec converts a declared node, reading its credentials; version is
// the resourceVersion of the Secret they came from, or the fileVersion of
// the kubeconfig file.
func (n *managerNodes) vnodeSpec(ctx context.Context, spec reconcile.NodeSpec) (vs vnode.NodeSpec, version string, err error) {
	remote, version, err := n.credentials(ctx, spec)
	if err != nil {
		return vnode.NodeSpec{}, "", err
	}
	vs = vnode.NodeSpec{
		Name:   spec.Name,
		Labels: spec.Labels,
		Cordon: spec.Cordon,
		Remote: remote,
	}
	for _, t := range spec.Taints {
		vs.Taints = append(vs.Taints, coreTaint(t))
	}
	caps := corev1.ResourceList{}
	for name, q := range map[corev1.ResourceName]*resource.Quantity{
		corev1.ResourceCPU: spec.Capacity.CPU, corev1.ResourceMemory: spec.Capacity.Memory, corev1.ResourcePods: spec.Capacity.Pods,
	} {
		if q != nil {
			caps[name] = q.DeepCopy()
		}
	}
	if len(caps) > 0 {
		vs.Capacity = caps
	}
	if spec.Namespaces.Mode == reconcile.NamespaceModePrefix {
		vs.NamespaceMode, vs.NamespacePrefix = vnode.NamespacePrefix, spec.Namespaces.Prefix
	} else {
		vs.NamespaceMode = vnode.NamespaceSame
	}
	vs.RemoteNamespaces = slices.Clone(spec.Namespaces.RestrictTo)
	return vs, version, nil
}

// credentials reads the remote's kubeconfig: from the Secret in Atoll's
// namespace (version is its resourceVersion), or from the (already
// absolute) path (version is its fileVersion, taken before it is read).
func (n *managerNodes) credentials(ctx context.Context, spec reconcile.NodeSpec) (cfg *rest.Config, version string, err error) {
	var data []byte
	switch c := spec.Credentials; {
	case c.SecretRef != nil:
		key := c.SecretRef.Key
		if key == "" {
			key = reconcile.DefaultSecretKey
		}
		cctx, cancel := context.WithTimeout(ctx, n.timeout)
		defer cancel()
		s, err := n.master.CoreV1().Secrets(n.namespace).Get(cctx, c.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, "", fmt.Errorf("read secret %s/%s: %w: %w", n.namespace, c.SecretRef.Name, reconcile.ErrCredentials, err)
		}
		var ok bool
		if data, ok = s.Data[key]; !ok {
			return nil, "", fmt.Errorf("secret %s/%s has no key %q: %w", n.namespace, c.SecretRef.Name, key, reconcile.ErrCredentials)
		}
		version = s.ResourceVersion
	case c.Path != "":
		version, err := fileVersion(c.Path)
		if err != nil {
			return nil, "", fmt.Errorf("read kubeconfig: %w: %w", reconcile.ErrCredentials, err)
		}
		// Loaded from the file so relative certificate paths resolve.
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Path)
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig %s: %w: %w", c.Path, reconcile.ErrCredentials, err)
		}
		return cfg, version, nil
	default:
		return nil, "", fmt.Errorf("cluster %s declares no credentials: %w", spec.Name, reconcile.ErrCredentials)
	}
	err = selfContained(data, n.allowExec)
	if err == nil {
		cfg, err = clientcmd.RESTConfigFromKubeConfig(data)
	}
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig of %s (secret %s/%s): %w: %w", spec.Name, n.namespace, spec.Credentials.SecretRef.Name, reconcile.ErrCredentials, err)
	}
	return cfg, version, nil
}

// selfContained refuses, before it is loaded, what a kubeconfig in a
// Secret must not do: run a program on Atoll's machine (an exec credential
// plugin, unless allowExec) or read a file there (a certificate, key or
// token file, which would send Atoll's own credentials, such as its
// ServiceAccount token, to whatever server the kubeconfig names). Whoever
// may write the Secret gets no more than the credentials they put in it.
func selfContained(data []byte, allowExec bool) error {
	c, err := clientcmd.Load(data)
	if err != nil {
		return err
	}
	refuseFile := func(kind, name, field, path string) error {
		return fmt.Errorf("%s %q: %s names the file %s, refused: a kubeconfig in a Secret holds its credentials inline (%s-data, token)", kind, name, field, path, field)
	}
	for _, name := range slices.Sorted(maps.Keys(c.AuthInfos)) {
		u := c.AuthInfos[name]
		if u.Exec != nil && !allowExec {
			return fmt.Errorf("user %q runs the credential plugin %q, refused (start Atoll with --allow-exec-credentials to allow plugins)", name, u.Exec.Command)
		}
		for _, f := range []struct{ field, path string }{{"client-certificate", u.ClientCertificate}, {"client-key", u.ClientKey}, {"tokenFile", u.TokenFile}} {
			if f.path != "" {
				return refuseFile("user", name, f.field, f.path)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Clusters)) {
		if p := c.Clusters[name].CertificateAuthority; p != "" {
			return refuseFile("cluster", name, "certificate-authority", p)
		}
	}
	return nil
}
