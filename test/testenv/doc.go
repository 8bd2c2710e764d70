// Package testenv runs a local multi-cluster test bed made of real
// Kubernetes parts: one etcd, a master (kube-apiserver, kube-scheduler,
// kube-controller-manager) and remote clusters (the same plus kwok, which
// plays the kubelet of fake Ready nodes), all on loopback.
//
// Every cluster has its own CA, serves TLS, authenticates with client
// certificates, authorizes with RBAC and refuses anonymous requests. The
// master's apiserver has a kubelet client certificate (user
// KubeletClientUser, bound to system:kubelet-api-admin) and trusts kubelet
// serving certificates signed by its CA, so a kubelet API served by Atoll can
// authenticate it and be verified by it.
//
// The binaries are built once from Go modules (see Build) and cached outside
// the repository, keyed by version. A test package starts one bed in TestMain:
//
//	env, err := testenv.Start(ctx, testenv.Options{Remotes: 2, NodesPerRemote: 3})
//	...
//	defer env.Stop(ctx)
//	cs, _ := env.Remotes[0].Clientset()
//
// The command in test/env wraps the same functions: build, up, down, status.
package testenv
