// Package deploy holds the manifests Atoll installs itself with, for the
// commands that apply them (`atoll cluster add` applies RemoteRBAC).
package deploy

import _ "embed"

// RemoteRBAC is deploy/remote/rbac.yaml: what Atoll needs in a remote
// cluster (its namespace, ServiceAccount and least-privilege roles).
//
//go:embed remote/rbac.yaml
var RemoteRBAC []byte
