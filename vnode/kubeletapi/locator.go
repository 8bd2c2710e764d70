package kubeletapi

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ErrPodNotFound is returned by a Locator for a pod that no virtual node of
// this process runs.
var ErrPodNotFound = errors.New("pod not found on any virtual node of this process")

// Target is where a master pod's containers really run.
type Target struct {
	// Node is the virtual node the master pod is bound to. Requests are
	// authorized against it, as a kubelet authorizes against its own node.
	Node string
	// Config and Client reach the remote cluster.
	Config *rest.Config
	Client kubernetes.Interface
	// Namespace and Name are the pod's coordinates in the remote cluster.
	Namespace, Name string
}

// Locator finds the remote pod behind a master pod.
type Locator interface {
	// Locate returns the remote pod for the master pod namespace/name. It
	// returns an error wrapping ErrPodNotFound when no virtual node of this
	// process runs that pod.
	Locate(ctx context.Context, namespace, name string) (Target, error)
	// Pods returns the master pods bound to the virtual nodes of this
	// process, whole, as the master has them.
	Pods(ctx context.Context) ([]*corev1.Pod, error)
}
