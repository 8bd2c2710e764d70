// Package kubeletapi serves the kubelet API for every virtual node of an
// Atoll process: container logs, exec, attach and port-forward of a master
// pod are proxied to its copy's subresources on the remote cluster's API
// server, so `kubectl logs/exec/attach/port-forward` against the master work
// for delegated pods as for local ones.
//
// Every request is authenticated (client certificates signed by the client
// CA, or bearer tokens through a TokenReview against the master) and
// authorized with a SubjectAccessReview on nodes/proxy (nodes/log,
// nodes/stats, nodes/metrics) of the virtual node the pod is bound to, as a
// kubelet in webhook mode does; answers are cached for the kubelet's default
// times (two minutes for a token, five for an allowed request, thirty
// seconds for a denied one), and a client CA file is read again when it
// changes. Anonymous requests get 401; the server will not start without an
// authenticator unless Insecure is set.
//
//	srv, err := kubeletapi.New(kubeletapi.Config{
//		Addr:         ":10250",
//		Locator:      manager, // *vnode.Manager
//		Master:       masterClient,
//		ClientCAFile: "/etc/atoll/master-ca.crt",
//	})
//	...
//	go srv.Run(ctx)
package kubeletapi
