package vnode

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
)

// remoteObject is an object in the fake remote of the cleanup tests; its
// UID is derived from where it is.
func remoteObject(gvr schema.GroupVersionResource, kind, namespace, name string, labels map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: gvr.GroupVersion().String(), Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels, UID: uidOf(ref(gvr, namespace, name))},
	}
}

func uidOf(ref string) types.UID { return types.UID("uid-" + ref) }

// ref names an object of the fake remote: resource/namespace/name.
func ref(gvr schema.GroupVersionResource, namespace, name string) string {
	return gvr.Resource + "/" + namespace + "/" + name
}

var (
	servicesResource        = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	serviceAccountsResource = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	cronJobsResource        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
)

// remoteObjects returns a namespace with labels and, in it, what every
// namespace holds (kube-root-ca.crt, the default ServiceAccount) and a pod,
// a ConfigMap and a Secret of this master's node testNode.
func remoteObjects(namespace string, nsLabels map[string]string) []runtime.Object {
	owned := map[string]string{LabelMaster: testMaster, LabelNode: testNode, LabelOriginUID: "origin"}
	return []runtime.Object{
		remoteObject(namespacesResource, "Namespace", "", namespace, nsLabels),
		remoteObject(configMapsResource, "ConfigMap", namespace, rootCAConfigMap, nil),
		remoteObject(serviceAccountsResource, "ServiceAccount", namespace, defaultServiceAccount, nil),
		remoteObject(podsResource, "Pod", namespace, "web", owned),
		remoteObject(configMapsResource, "ConfigMap", namespace, "settings", owned),
		remoteObject(secretsResource, "Secret", namespace, "token", owned),
	}
}

// ownedCopies are the refs of the copies remoteObjects makes in namespace.
func ownedCopies(namespace string) []string {
	return []string{ref(podsResource, namespace, "web"), ref(configMapsResource, namespace, "settings"), ref(secretsResource, namespace, "token")}
}

func TestRemoteCleanup(t *testing.T) {
	managed := managedNamespaceLabels(testMaster, testNode)
	otherNode := map[string]string{LabelMaster: testMaster, LabelNode: "other-node", LabelOriginUID: "o2"}
	otherMaster := map[string]string{LabelMaster: "other-master", LabelNode: testNode, LabelOriginUID: "o3"}
	listFails := func(resource string, err error) func(*metadatafake.FakeMetadataClient) {
		return func(c *metadatafake.FakeMetadataClient) {
			c.PrependReactor("list", resource, func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
		}
	}
	unavailable := apierrors.NewServiceUnavailable("remote down")
	tests := []struct {
		name    string
		objects []runtime.Object
		hook    func(*metadatafake.FakeMetadataClient)
		// scope is the node's (a namespaced node reaches nothing outside it).
		scope scope
		// wantDeleted are the refs deleted; everything else stays.
		wantDeleted []string
		want        cleanupResult
		wantErr     bool
	}{
		{
			name:        "copies and the namespace Atoll made for the node go",
			objects:     remoteObjects("shop", managed),
			wantDeleted: append(ownedCopies("shop"), ref(namespacesResource, "", "shop")),
			want:        cleanupResult{copies: 3, namespacesDeleted: 1},
		},
		{
			name:        "a namespace Atoll did not make stays",
			objects:     remoteObjects("shop", map[string]string{"team": "web"}),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3},
		},
		{
			name:        "a namespace an Atoll without LabelNode made stays",
			objects:     remoteObjects("shop", map[string]string{LabelManaged: "true", LabelMaster: testMaster}),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3},
		},
		{
			name:        "a namespace made for another node stays",
			objects:     remoteObjects("shop", managedNamespaceLabels(testMaster, "other-node")),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3},
		},
		{
			name: "copies of another node or master, and what is not Atoll's, stay and keep the namespace",
			objects: append(remoteObjects("shop", managed),
				remoteObject(podsResource, "Pod", "shop", "other-node", otherNode),
				remoteObject(configMapsResource, "ConfigMap", "shop", "other-master", otherMaster),
				remoteObject(secretsResource, "Secret", "shop", "theirs", map[string]string{LabelNode: testNode}),
			),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3, namespacesKept: 1},
		},
		{
			name:        "a Service put into the namespace keeps it",
			objects:     append(remoteObjects("shop", managed), remoteObject(servicesResource, "Service", "shop", "web", nil)),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3, namespacesKept: 1},
		},
		{
			name:        "another ServiceAccount keeps the namespace",
			objects:     append(remoteObjects("shop", managed), remoteObject(serviceAccountsResource, "ServiceAccount", "shop", "builder", nil)),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3, namespacesKept: 1},
		},
		{
			name:        "a kind Atoll may not list keeps the namespace",
			objects:     remoteObjects("shop", managed),
			hook:        listFails("services", apierrors.NewForbidden(servicesResource.GroupResource(), "", errors.New("RBAC"))),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3, namespacesKept: 1},
		},
		{
			name:        "a kind the remote does not serve is skipped",
			objects:     remoteObjects("shop", managed),
			hook:        listFails("cronjobs", apierrors.NewNotFound(cronJobsResource.GroupResource(), "")),
			wantDeleted: append(ownedCopies("shop"), ref(namespacesResource, "", "shop")),
			want:        cleanupResult{copies: 3, namespacesDeleted: 1},
		},
		{
			name: "two namespaces, one kept",
			objects: append(append(remoteObjects("shop", managed), remoteObjects("tools", managed)...),
				remoteObject(servicesResource, "Service", "tools", "api", nil)),
			wantDeleted: append(append(ownedCopies("shop"), ownedCopies("tools")...), ref(namespacesResource, "", "shop")),
			want:        cleanupResult{copies: 6, namespacesDeleted: 1, namespacesKept: 1},
		},
		{
			name:        "a namespaced node: its copies in its namespaces go, no namespace does",
			objects:     append(remoteObjects("shop", managed), remoteObjects("tools", managed)...),
			scope:       scope{"shop"},
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3},
		},
		{
			name:    "a remote that does not answer: nothing deleted",
			objects: remoteObjects("shop", managed),
			hook:    listFails("pods", unavailable),
			wantErr: true,
		},
		{
			name:        "an unanswered look into the namespace: the copies go, the namespace waits",
			objects:     remoteObjects("shop", managed),
			hook:        listFails("roles", unavailable),
			wantDeleted: ownedCopies("shop"),
			want:        cleanupResult{copies: 3},
			wantErr:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fakeRemoteMetadata(tt.objects...)
			if tt.hook != nil {
				tt.hook(client)
			}
			c := testCleanup(client)
			c.scope = tt.scope
			got, err := c.run(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("run() error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("run() = %+v, want %+v", got, tt.want)
			}
			deleted := checkDeletes(t, client)
			slices.Sort(deleted)
			want := slices.Sorted(slices.Values(tt.wantDeleted))
			if !slices.Equal(deleted, want) {
				t.Errorf("deleted %v\nwant    %v", deleted, want)
			}
			for _, a := range client.Actions() {
				if !tt.scope.serves(a.GetNamespace()) {
					t.Errorf("%s %s in namespace %q, outside the node's scope %v", a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), tt.scope)
				}
			}
		})
	}
}

// TestRemoteCleanupRetried: passes that fail are made again until one
// succeeds; a cancelled context stops them.
func TestRemoteCleanupRetried(t *testing.T) {
	tests := []struct {
		name        string
		failures    int32 // lists of the pod copies that fail before the remote answers
		cancelAfter time.Duration
		wantDeleted bool
	}{
		{name: "succeeds once the remote answers", failures: 3, wantDeleted: true},
		{name: "stops when cancelled", failures: 1 << 30, cancelAfter: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objects := remoteObjects("shop", managedNamespaceLabels(testMaster, testNode))
			client := fakeRemoteMetadata(objects...)
			var lists atomic.Int32
			client.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetNamespace() != metav1.NamespaceAll {
					return false, nil, nil // a look into a namespace
				}
				if lists.Add(1) <= tt.failures {
					return true, nil, apierrors.NewServiceUnavailable("remote down")
				}
				return false, nil, nil
			})
			ctx := context.Background()
			if tt.cancelAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.cancelAfter)
				defer cancel()
			}
			done := make(chan struct{})
			go func() {
				testCleanup(client).runUntilDone(ctx, time.Millisecond, 10*time.Millisecond)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("runUntilDone did not return")
			}
			deleted := checkDeletes(t, client)
			if got := len(deleted) == 4; got != tt.wantDeleted {
				t.Errorf("deleted %v; want all (copies and namespace): %v", deleted, tt.wantDeleted)
			}
			if n := lists.Load(); tt.wantDeleted && n != tt.failures+1 {
				t.Errorf("lists of the pod copies = %d, want %d", n, tt.failures+1)
			}
		})
	}
}

func fakeRemoteMetadata(objects ...runtime.Object) *metadatafake.FakeMetadataClient {
	scheme := metadatafake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		panic(err)
	}
	return metadatafake.NewSimpleMetadataClient(scheme, objects...)
}

func testCleanup(client *metadatafake.FakeMetadataClient) *remoteCleanup {
	return &remoteCleanup{node: testNode, masterID: testMaster, client: client, timeout: time.Second,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// checkDeletes returns the refs the client deleted, and fails the test for
// a delete not conditional on the UID of the object seeded there.
func checkDeletes(t *testing.T, client *metadatafake.FakeMetadataClient) []string {
	t.Helper()
	var deleted []string
	for _, a := range client.Actions() {
		d, ok := a.(k8stesting.DeleteActionImpl)
		if !ok {
			continue
		}
		r := ref(d.GetResource(), d.GetNamespace(), d.GetName())
		if pre := d.DeleteOptions.Preconditions; pre == nil || pre.UID == nil || *pre.UID != uidOf(r) {
			t.Errorf("delete of %s without the precondition UID %s: %+v", r, uidOf(r), pre)
		}
		deleted = append(deleted, r)
	}
	return deleted
}
