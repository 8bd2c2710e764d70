package reconcile

import (
	"context"
	"errors"
)

// ErrCredentials is matched (errors.Is) by NodeSet errors about a cluster's
// credentials: a missing Secret or key, an unreadable or invalid kubeconfig.
// The reconciler reports them for that cluster and retries; the other
// clusters proceed.
var ErrCredentials = errors.New("cluster credentials")

// NodeSet is the set of virtual nodes this process runs (in cmd, a
// vnode.Manager plus a credentials resolver).
type NodeSet interface {
	// Add starts a virtual node for spec. spec.Credentials.Path, when set,
	// is absolute; a SecretRef names a Secret in Atoll's namespace. It
	// returns once the node is started, not once it is Ready. A node that
	// already runs is updated instead.
	Add(ctx context.Context, spec NodeSpec) error
	// Update applies a changed spec to a running node (labels, taints,
	// capacity, cordon live; credentials or namespaces restart its
	// controllers). A node that does not run is added.
	Update(ctx context.Context, spec NodeSpec) error
	// Remove stops the node's controllers and deletes its Node (and node
	// Lease) from the master; what the node made in its remote is deleted
	// in the background, once the remote answers. For a name it does not
	// run, it deletes the Node object only (it has no credentials for the
	// remote). Removing a node that is gone is not an error.
	Remove(ctx context.Context, name string) error
	// List returns the state of every node this set runs, by name.
	List() []NodeState
}

// NodeState is the health of one running virtual node.
type NodeState struct {
	Name string
	// Ready is true while the remote API answers and has a Ready node.
	Ready bool
	// Reason says why the node is not Ready.
	Reason string
	// DelegatedPods is the number of pods running in the remote for it.
	DelegatedPods int
	// LastError is the node's last error, "" if none.
	LastError string
}
