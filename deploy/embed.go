// Package deploy holds the manifests Atoll installs itself with, for the
// commands that apply them (`atoll cluster add` applies RemoteRBAC) and
// the tests that run Atoll with exactly the rights they grant.
package deploy

import _ "embed"

// RemoteRBAC is deploy/remote/rbac.yaml: what Atoll needs in a remote
// cluster (its namespace, ServiceAccount and least-privilege roles).
//
//go:embed remote/rbac.yaml
var RemoteRBAC []byte

// RemoteNamespacedIdentity and RemoteNamespacedAccess are
// deploy/remote-namespaced: Atoll's ServiceAccount in one namespace of a
// remote it may use some namespaces of only, and its Role in each of them
// (NamespacedRemote).
var (
	//go:embed remote-namespaced/identity.yaml
	RemoteNamespacedIdentity []byte
	//go:embed remote-namespaced/access.yaml
	RemoteNamespacedAccess []byte
)

// MasterRBAC is deploy/master/rbac.yaml: Atoll's namespace, ServiceAccount
// and roles in the master, and the admission policy that limits its Node
// writes to its virtual nodes.
//
//go:embed master/rbac.yaml
var MasterRBAC []byte
