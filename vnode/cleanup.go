package vnode

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/metadata"
)

// The kinds of remote object a virtual node makes.
var (
	podsResource       = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	configMapsResource = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsResource    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	namespacesResource = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// copyResources are the kinds of the copies a virtual node makes, deleted
// in this order once it is removed.
var copyResources = []schema.GroupVersionResource{podsResource, configMapsResource, secretsResource}

// namespaceContents are the kinds a namespace Atoll made is looked at for
// before it is deleted: any object of them Atoll did not make for this
// master and node (but a namespace's own kube-root-ca.crt ConfigMap and
// default ServiceAccount) keeps the namespace. Kinds not listed here
// (Events, objects of custom resources, ...) are not looked at;
// deploy/remote lets Atoll list every kind listed.
var namespaceContents = append(append([]schema.GroupVersionResource{}, copyResources...),
	schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"},
	schema.GroupVersionResource{Version: "v1", Resource: "services"},
	schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"},
	schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"},
	schema.GroupVersionResource{Version: "v1", Resource: "limitranges"},
	schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
	schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
	schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"},
	schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"},
	schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"},
	schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"},
	schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
)

// defaultServiceAccount is made in every namespace by each cluster.
const defaultServiceAccount = "default"

// remoteCleanup deletes what a removed virtual node made in its remote: the
// pods, ConfigMaps and Secrets carrying this master's LabelMaster and the
// node's LabelNode, then the namespaces it created (managedNamespaceLabels)
// that hold nothing else. It reads live, as the node's caches went with
// it, through the metadata API (names, labels and UIDs are all it needs),
// and every delete is conditional on the UID read.
//
// Between the look into a namespace and its delete, something new may be
// put there; the delete is conditional on the namespace only.
//
// A namespaced node (scope) looks only into its namespaces, and deletes
// none: it created none.
type remoteCleanup struct {
	node     string
	masterID string
	scope    scope
	client   metadata.Interface
	timeout  time.Duration // of each call
	log      *slog.Logger
}

// cleanupResult counts what one pass did.
type cleanupResult struct {
	copies            int // pods, ConfigMaps and Secrets deleted
	namespacesDeleted int
	namespacesKept    int // made by Atoll, but holding something else
}

// run makes one pass. An error means the remote did not answer or refused
// a call; a pass made again finds what is left, so it may be repeated.
func (c *remoteCleanup) run(ctx context.Context) (cleanupResult, error) {
	var res cleanupResult
	owned := ownedSelector(c.masterID, c.node)
	for _, gvr := range copyResources {
		for _, ns := range c.scope.informerNamespaces() {
			items, err := c.list(ctx, gvr, ns, owned)
			if err != nil {
				return res, err
			}
			for i := range items {
				o := &items[i]
				if !ownedBy(o, c.masterID, c.node) || o.DeletionTimestamp != nil {
					continue
				}
				if err := c.delete(ctx, gvr, o); err != nil {
					return res, err
				}
				res.copies++
			}
		}
	}
	if c.scope.namespaced() {
		return res, nil
	}
	managed := labels.SelectorFromSet(managedNamespaceLabels(c.masterID, c.node))
	namespaces, err := c.list(ctx, namespacesResource, "", managed.String())
	if err != nil {
		return res, err
	}
	for i := range namespaces {
		ns := &namespaces[i]
		if !managed.Matches(labels.Set(ns.Labels)) || ns.DeletionTimestamp != nil {
			continue
		}
		holds, err := c.foreignContent(ctx, ns.Name)
		if err != nil {
			return res, err
		}
		if holds != "" {
			c.log.Info("remote namespace Atoll created is kept: it holds something else", "namespace", ns.Name, "holds", holds)
			res.namespacesKept++
			continue
		}
		if err := c.delete(ctx, namespacesResource, ns); err != nil {
			return res, err
		}
		res.namespacesDeleted++
	}
	return res, nil
}

// foreignContent names an object in namespace that this master and node
// did not make ("" if there is none): kind/name, or the kind Atoll may not
// list there, which keeps the namespace as well.
func (c *remoteCleanup) foreignContent(ctx context.Context, namespace string) (string, error) {
	for _, gvr := range namespaceContents {
		items, err := c.list(ctx, gvr, namespace, "")
		switch {
		case apierrors.IsForbidden(err):
			return gvr.Resource + " (not allowed to list them)", nil
		case apierrors.IsNotFound(err):
			continue // a kind this remote does not serve
		case err != nil:
			return "", err
		}
		for i := range items {
			o := &items[i]
			switch {
			case ownedBy(o, c.masterID, c.node),
				gvr == configMapsResource && o.Name == rootCAConfigMap,
				gvr.Resource == "serviceaccounts" && o.Name == defaultServiceAccount:
				continue
			}
			return gvr.Resource + "/" + o.Name, nil
		}
	}
	return "", nil
}

func (c *remoteCleanup) list(ctx context.Context, gvr schema.GroupVersionResource, namespace, selector string) ([]metav1.PartialObjectMetadata, error) {
	var l *metav1.PartialObjectMetadataList
	err := withTimeout(ctx, c.timeout, func(cc context.Context) (err error) {
		l, err = c.client.Resource(gvr).Namespace(namespace).List(cc, metav1.ListOptions{LabelSelector: selector})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list remote %s: %w", gvr.Resource, err)
	}
	return l.Items, nil
}

// delete deletes one remote object on the condition that it is still the
// very object (its UID); one gone or replaced meanwhile is no error.
func (c *remoteCleanup) delete(ctx context.Context, gvr schema.GroupVersionResource, o metav1.Object) error {
	opts := metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(o.GetUID()))}
	err := withTimeout(ctx, c.timeout, func(cc context.Context) error {
		return c.client.Resource(gvr).Namespace(o.GetNamespace()).Delete(cc, o.GetName(), opts)
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete remote %s %s: %w", gvr.Resource, objectName(o), err)
	}
	c.log.Debug("deleted remote object of the removed node", "resource", gvr.Resource, "name", objectName(o))
	return nil
}

func objectName(o metav1.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// runUntilDone makes passes until one succeeds or ctx ends (the Manager
// stops, or a node of the same name is added again), with exponential
// backoff between passes, capped at maxDelay, and reports each failure.
func (c *remoteCleanup) runUntilDone(ctx context.Context, baseDelay, maxDelay time.Duration) {
	b := wait.Backoff{Duration: baseDelay, Factor: 2, Jitter: 0.1, Cap: maxDelay, Steps: math.MaxInt32}
	start := time.Now()
	for attempt := 1; ctx.Err() == nil; attempt++ {
		res, err := c.run(ctx)
		if err == nil {
			c.log.Info("remote cleaned up after the node's removal", "copiesDeleted", res.copies,
				"namespacesDeleted", res.namespacesDeleted, "namespacesKept", res.namespacesKept,
				"attempts", attempt, "took", time.Since(start).Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			break
		}
		d := b.Step()
		c.log.Warn("remote cleanup after the node's removal failed; retrying", "attempt", attempt, "retryIn", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	c.log.Warn("remote cleanup after the node's removal stopped before it finished: what the node made there stays")
}
