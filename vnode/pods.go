package vnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// errRemoteUnavailable is returned while the remote API does not answer:
// nothing is created or deleted there until it does.
var errRemoteUnavailable = errors.New("remote cluster unavailable")

// terminatingRecheck is how often a terminating pod is looked at again while
// its remote copy goes away (remote informer events usually come first).
const terminatingRecheck = 5 * time.Second

func isTerminal(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// syncPod converges one master pod and its remote copy. It is level-based:
// it only looks at the current state of both sides (from the caches, with a
// live read where a cache could mislead it into a destructive step).
func (v *VirtualNode) syncPod(ctx context.Context, namespace, name string) (time.Duration, error) {
	remoteNS := v.ns.Remote(namespace)
	k := workKey{kind: keyPod, namespace: namespace, name: name}
	entry, _ := v.master.pods.entry(namespace, name)
	remoteEntry, _ := v.remote.pods.entry(remoteNS, name)
	if v.convergedFromMeta(k, entry, remoteEntry) {
		v.forgetObserved(k)
		return 0, nil
	}
	master, remote := podOf(entry), podOf(remoteEntry)
	if master == nil {
		v.forgetObserved(k)
		v.converged.forget(k)
		if remote == nil {
			return 0, nil
		}
		return 0, v.deleteOrphanPod(ctx, remote)
	}
	if remote != nil && remote.Labels[LabelOriginUID] != string(master.UID) {
		// A copy of an earlier master pod of the same name (StatefulSet).
		if err := v.deleteOrphanPod(ctx, remote); err != nil {
			return 0, err
		}
		return time.Second, nil
	}
	if master.DeletionTimestamp != nil || remote == nil {
		v.converged.forget(k)
	}
	if master.DeletionTimestamp != nil {
		return v.syncDeletion(ctx, master, remote)
	}
	if remote == nil {
		if isTerminal(master.Status.Phase) {
			return 0, nil
		}
		if IsDaemonSetPod(master) {
			v.refuseDaemonSetPod(ctx, master)
			return 0, nil
		}
		if !v.remote.scope.serves(remoteNS) {
			v.refuseNotServed(ctx, master, remoteNS)
			return 0, nil
		}
		// A delegated pod whose copy an earlier namespace mapping made
		// moves: its copy is made again here, and the old one goes once
		// this one exists (deleteStray).
		if hasCondition(master, ConditionDelegated) && v.strayCopyOf(master.UID) == nil {
			// It existed before: gone behind our back, or the cache lags.
			live, err := v.getRemotePod(ctx, remoteNS, name)
			switch {
			case apierrors.IsNotFound(err):
				return 0, v.markRemoteDeleted(ctx, master)
			case err != nil:
				v.recordError("status", err)
				return 0, err
			case ownedBy(live, v.masterID, v.name) && live.Labels[LabelOriginUID] == string(master.UID):
				return time.Second, nil // the cache catches up
			}
		}
		if _, lean := entry.(*leanPod); lean {
			whole, err := v.wholeMasterPod(ctx, master)
			if err != nil {
				return 0, err
			}
			master = whole
		}
		if err := v.createRemotePod(ctx, master); err != nil {
			return 0, err
		}
		return 0, nil
	}
	state := podState{masterRV: master.ResourceVersion, remoteRV: remote.ResourceVersion, specGen: v.specGen.Load()}
	// Only states with both resource versions set are remembered: objects
	// never from an API server are always looked at.
	memo := master.ResourceVersion != "" && remote.ResourceVersion != ""
	if err := v.updateRemotePod(ctx, master, remote); err != nil {
		v.recordError("update", err)
		return 0, err
	}
	// Read before the sync: a remote that goes away meanwhile makes the
	// sync skip its writes, and that state must be looked at again.
	healthy := v.healthy.Load()
	if err := v.syncStatus(ctx, master, remote); err != nil {
		return 0, err
	}
	if memo && healthy && v.healthy.Load() {
		v.converged.set(k, state)
	}
	return 0, nil
}

// convergedFromMeta reports, from the metadata of the master and remote
// cache entries alone (no pod is built), whether both sides are in a state a
// sync converged in before. Resource versions name one write each, so equal
// ones mean the very objects of then: the same master pod, not being
// deleted, and its own copy (a state is only remembered with both versions
// set).
func (v *VirtualNode) convergedFromMeta(k workKey, masterEntry, remoteEntry any) bool {
	m, ok := metaOf(masterEntry)
	if !ok {
		return false
	}
	r, ok := metaOf(remoteEntry)
	if !ok {
		return false
	}
	return v.converged.has(k, podState{masterRV: m.GetResourceVersion(), remoteRV: r.GetResourceVersion(), specGen: v.specGen.Load()})
}

func (v *VirtualNode) getRemotePod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	if !v.healthy.Load() {
		return nil, errRemoteUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	return v.remote.client.CoreV1().Pods(namespace).Get(cctx, name, metav1.GetOptions{})
}

// translateOptions returns what TranslatePod needs for this node now.
func (v *VirtualNode) translateOptions() TranslateOptions {
	spec := v.currentSpec()
	return TranslateOptions{
		NodeName:   v.name,
		MasterID:   v.masterID,
		Namespaces: v.ns,
		NodeLabels: selectorDroppedLabels(nodeLabels(spec)),
		NodeTaints: spec.Taints,
		ServiceAccountExists: func(namespace, name string) bool {
			_, ok := v.remote.serviceAccounts.get(namespace, name)
			return ok
		},
	}
}

// createRemotePod copies dependencies, then creates the remote pod. Create is
// idempotent: an existing copy of the same master pod is adopted; a foreign
// pod of the same name is never touched and reported as NameConflict.
func (v *VirtualNode) createRemotePod(ctx context.Context, master *corev1.Pod) error {
	if !v.healthy.Load() {
		return errRemoteUnavailable
	}
	if err := v.ensureDependencies(ctx, master); err != nil {
		var missing *MissingDependencyError
		var denied *DependencyAccessError
		switch {
		case errors.As(err, &missing):
			reason := "ConfigMapNotFound"
			if missing.Kind == KindSecret {
				reason = "SecretNotFound"
			}
			v.reportProblem(ctx, master, ConditionDependenciesReady, reason, err.Error(), "FailedDependency")
		case errors.As(err, &denied):
			v.reportProblem(ctx, master, ConditionDependenciesReady, ReasonDependenciesForbidden, err.Error(), "FailedDependency")
		case errors.Is(err, ErrNameConflict):
			v.reportProblem(ctx, master, ConditionNameConflict, "NameConflict", err.Error(), "NameConflict")
		case errors.Is(err, errDependencyCacheSyncing):
			// Tried again when the cache has synced.
		default:
			v.recordError("dependency", err)
		}
		return err
	}
	want, err := TranslatePod(master, v.translateOptions())
	if err != nil {
		return err // cannot happen for pods from the API server
	}
	if err := v.ensureNamespace(ctx, want.Namespace); err != nil {
		v.recordError("namespace", err)
		return err
	}
	err = withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) error {
		_, err := v.remote.client.CoreV1().Pods(want.Namespace).Create(c, want, metav1.CreateOptions{})
		return err
	})
	if err == nil {
		v.log.Debug("created remote pod", "namespace", want.Namespace, "name", want.Name)
		if c := claimsCondition(want); c != nil {
			v.recorder.Event(master, corev1.EventTypeWarning, ReasonClaimsNotCopied, c.Message)
		}
		return nil
	}
	if apierrors.IsAlreadyExists(err) {
		live, gerr := v.getRemotePod(ctx, want.Namespace, want.Name)
		if gerr != nil {
			return gerr
		}
		if !ownedBy(live, v.masterID, v.name) {
			msg := fmt.Sprintf("remote pod %s/%s exists and is not managed by Atoll for this master; it is left untouched", live.Namespace, live.Name)
			v.reportProblem(ctx, master, ConditionNameConflict, "NameConflict", msg, "NameConflict")
			return fmt.Errorf("create remote pod %s/%s: %w", want.Namespace, want.Name, ErrNameConflict)
		}
		if live.Labels[LabelOriginUID] != string(master.UID) {
			if err := v.deleteOrphanPod(ctx, live); err != nil {
				return err
			}
			return fmt.Errorf("create remote pod %s/%s: stale copy being removed", want.Namespace, want.Name)
		}
		return nil // adopted: our own copy from before a restart
	}
	if apierrors.IsNotFound(err) {
		v.nsEnsured.Delete(want.Namespace) // the namespace went away
	}
	v.recordError("create", err)
	v.reportProblem(ctx, master, ConditionRemoteCreated, "CreateRefused", "remote refused the pod: "+err.Error(), "RemoteCreateFailed")
	return fmt.Errorf("create remote pod %s/%s: %w", want.Namespace, want.Name, err)
}

// wholeMasterPod reads from the master a pod the cache holds lean
// (leanMasterPod) with its whole spec.
func (v *VirtualNode) wholeMasterPod(ctx context.Context, master *corev1.Pod) (*corev1.Pod, error) {
	var live *corev1.Pod
	err := withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) error {
		var err error
		live, err = v.master.client.CoreV1().Pods(master.Namespace).Get(c, master.Name, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read master pod %s/%s: %w", master.Namespace, master.Name, err)
	}
	if live.UID != master.UID {
		return nil, fmt.Errorf("master pod %s/%s was replaced meanwhile", master.Namespace, master.Name)
	}
	return live, nil
}

// updateRemotePod carries the fields a pod may change after creation
// (labels, annotations, container images, activeDeadlineSeconds) to the
// remote copy, as a strategic merge patch of just those fields, with the
// copy's resourceVersion as precondition. Labels and annotations the master
// pod dropped are dropped (AnnotationCopiedKeys says which were copied);
// those the remote added are kept. The remote cache holds no more of the
// pod than this needs (leanRemotePod).
func (v *VirtualNode) updateRemotePod(ctx context.Context, master, remote *corev1.Pod) error {
	if remote.DeletionTimestamp != nil || isTerminal(remote.Status.Phase) {
		return nil
	}
	want, err := TranslatePod(master, v.translateOptions())
	if err != nil {
		return err
	}
	meta := map[string]any{}
	copied := copiedKeysOf(remote)
	if l := entryChanges(remote.Labels, want.Labels, copied.Labels); l != nil {
		meta["labels"] = l
	}
	if a := entryChanges(remote.Annotations, want.Annotations, copied.Annotations); a != nil {
		meta["annotations"] = a
	}
	spec := map[string]any{}
	if c := changedImages(remote.Spec.Containers, want.Spec.Containers); c != nil {
		spec["containers"] = c
	}
	if c := changedImages(remote.Spec.InitContainers, want.Spec.InitContainers); c != nil {
		spec["initContainers"] = c
	}
	if d := want.Spec.ActiveDeadlineSeconds; d != nil && (remote.Spec.ActiveDeadlineSeconds == nil || *remote.Spec.ActiveDeadlineSeconds != *d) {
		spec["activeDeadlineSeconds"] = *d
	}
	if len(meta) == 0 && len(spec) == 0 {
		return nil
	}
	if !v.healthy.Load() {
		return errRemoteUnavailable
	}
	meta["resourceVersion"] = remote.ResourceVersion
	patch := map[string]any{"metadata": meta}
	if len(spec) > 0 {
		patch["spec"] = spec
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("update remote pod %s/%s: %w", remote.Namespace, remote.Name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	_, err = v.remote.client.CoreV1().Pods(remote.Namespace).Patch(cctx, remote.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
	return err
}

// entryChanges returns, as the entries of a strategic merge patch, those
// of want that cur lacks or holds with another value, and a null for each
// key of copied that want lacks and cur still holds; nil when there are
// none.
func entryChanges(cur, want map[string]string, copied []string) map[string]any {
	out := map[string]any{}
	for k, val := range want {
		if c, ok := cur[k]; !ok || c != val {
			out[k] = val
		}
	}
	for _, k := range copied {
		if _, wanted := want[k]; !wanted {
			if _, held := cur[k]; held {
				out[k] = nil
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// containerImage is one container in a patch: merged by name.
type containerImage struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// changedImages returns the containers of cur whose image want changes
// (matched by position and name); nil when there are none.
func changedImages(cur, want []corev1.Container) []containerImage {
	var out []containerImage
	for i := range cur {
		if i < len(want) && cur[i].Name == want[i].Name && cur[i].Image != want[i].Image {
			out = append(out, containerImage{Name: cur[i].Name, Image: want[i].Image})
		}
	}
	return out
}

// syncDeletion handles a master pod marked for deletion: delete the remote
// copy with the pod's grace period, and remove the master pod only once the
// copy is gone. While the remote does not answer, the copy's fate is
// unknown and the master pod stays, terminating, as a kubelet's pod does on
// a lost node: a ReplicaSet replaces it at once (terminating pods do not
// count), a StatefulSet waits, so two pods never hold one identity. The
// master pod goes without its copy's end only when an operator says that
// copy is dead: the node.kubernetes.io/out-of-service taint on the Node
// (the copy is then deleted when the remote returns), or when the node is
// removed (the master's pod garbage collector then deletes its pods).
func (v *VirtualNode) syncDeletion(ctx context.Context, master, remote *corev1.Pod) (time.Duration, error) {
	remoteNS := v.ns.Remote(master.Namespace)
	if !v.healthy.Load() {
		if time.Now().Before(master.DeletionTimestamp.Time) {
			return time.Until(master.DeletionTimestamp.Time) + time.Second, nil
		}
		if v.outOfService() {
			return 0, v.forceDeleteMaster(ctx, master)
		}
		v.reportCopyFateUnknown(ctx, master, "the remote cluster does not answer")
		return terminatingRecheck, nil
	}
	if remote == nil && !v.remote.scope.serves(remoteNS) {
		// Outside the node's namespaces, where it can see no copy: a pod
		// never delegated has none; one delegated while its namespace was
		// served may still run there.
		if !hasCondition(master, ConditionDelegated) || v.outOfService() {
			return 0, v.forceDeleteMaster(ctx, master)
		}
		v.reportCopyFateUnknown(ctx, master, "the remote namespace "+remoteNS+" is no longer one the node may use")
		return terminatingRecheck, nil
	}
	if remote == nil {
		live, err := v.getRemotePod(ctx, remoteNS, master.Name)
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, err
		}
		if err == nil && ownedBy(live, v.masterID, v.name) && live.Labels[LabelOriginUID] == string(master.UID) {
			remote = live
		}
	}
	if remote == nil {
		return 0, v.forceDeleteMaster(ctx, master)
	}
	if remote.DeletionTimestamp == nil {
		cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
		defer cancel()
		opts := metav1.DeleteOptions{
			GracePeriodSeconds: master.DeletionGracePeriodSeconds,
			Preconditions:      metav1.NewUIDPreconditions(string(remote.UID)),
		}
		err := v.remote.client.CoreV1().Pods(remote.Namespace).Delete(cctx, remote.Name, opts)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			v.recordError("delete", err)
			return 0, fmt.Errorf("delete remote pod %s/%s: %w", remote.Namespace, remote.Name, err)
		}
	}
	if err := v.syncStatus(ctx, master, remote); err != nil {
		v.log.Debug("status of terminating pod", "namespace", master.Namespace, "name", master.Name, "err", err)
	}
	return terminatingRecheck, nil
}

// outOfService reports whether this node's Node carries the
// node.kubernetes.io/out-of-service taint (any effect).
func (v *VirtualNode) outOfService() bool {
	n, err := v.master.nodes.Lister().Get(v.name)
	if err != nil {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeOutOfService {
			return true
		}
	}
	return false
}

// reportCopyFateUnknown says once, on a terminating master pod past its
// grace period, why it is still there: why Atoll cannot see its copy.
func (v *VirtualNode) reportCopyFateUnknown(ctx context.Context, master *corev1.Pod, why string) {
	if c := findCondition(master.Status.Conditions, ConditionRemoteReachable); c != nil && c.Reason == ReasonCopyFateUnknown {
		return
	}
	v.reportProblem(ctx, master, ConditionRemoteReachable, ReasonCopyFateUnknown,
		why+", so whether this pod's copy still runs is unknown: the pod is removed once the remote confirms the copy is gone, or at once if the node gets the "+corev1.TaintNodeOutOfService+" taint",
		ReasonCopyFateUnknown)
}

// forceDeleteMaster removes the master pod (grace 0) with a UID precondition.
func (v *VirtualNode) forceDeleteMaster(ctx context.Context, master *corev1.Pod) error {
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	opts := *metav1.NewDeleteOptions(0)
	opts.Preconditions = metav1.NewUIDPreconditions(string(master.UID))
	err := v.master.client.CoreV1().Pods(master.Namespace).Delete(cctx, master.Name, opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		v.recordError("delete", err)
	}
	return err
}

// deleteOrphanPod deletes a remote copy whose master pod is gone (or is a
// different pod now). The master is read live first: a stale cache never
// causes a delete.
func (v *VirtualNode) deleteOrphanPod(ctx context.Context, remote *corev1.Pod) error {
	if !ownedBy(remote, v.masterID, v.name) || remote.DeletionTimestamp != nil {
		return nil
	}
	if !v.healthy.Load() {
		return errRemoteUnavailable
	}
	k, ok := v.masterKeyOf(remote)
	if !ok {
		return nil
	}
	var live *corev1.Pod
	err := withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) (err error) {
		live, err = v.master.client.CoreV1().Pods(k.namespace).Get(c, k.name, metav1.GetOptions{})
		return err
	})
	switch {
	case err == nil && string(live.UID) == remote.Labels[LabelOriginUID]:
		return nil // not an orphan; the cache lags
	case err != nil && !apierrors.IsNotFound(err):
		return err
	}
	if err := v.deletePodCopy(ctx, remote); err != nil {
		v.recordError("gc", err)
		return err
	}
	v.log.Info("deleted orphaned remote pod", "namespace", remote.Namespace, "name", remote.Name, "originUID", remote.Labels[LabelOriginUID])
	return nil
}

// deletePodCopy deletes a remote pod on the condition that it is still the
// very object (its UID); one gone or replaced meanwhile is no error.
func (v *VirtualNode) deletePodCopy(ctx context.Context, remote metav1.Object) error {
	opts := metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(remote.GetUID()))}
	err := withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) error {
		return v.remote.client.CoreV1().Pods(remote.GetNamespace()).Delete(c, remote.GetName(), opts)
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// ensureNamespace creates a remote namespace, labelled as managed by this
// master and node (managedNamespaceLabels), if missing. One that exists is
// used as it is: it was not made by Atoll and stays when the node goes. A
// namespaced node's namespaces exist already: it may not create any.
func (v *VirtualNode) ensureNamespace(ctx context.Context, namespace string) error {
	if _, ok := v.nsEnsured.Load(namespace); ok || v.remote.scope.namespaced() {
		return nil
	}
	if ns, err := v.remote.namespaces.Lister().Get(namespace); err == nil && ns.DeletionTimestamp == nil {
		v.nsEnsured.Store(namespace, struct{}{})
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   namespace,
		Labels: managedNamespaceLabels(v.masterID, v.name),
	}}
	_, err := v.remote.client.CoreV1().Namespaces().Create(cctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create remote namespace %s: %w", namespace, err)
	}
	v.nsEnsured.Store(namespace, struct{}{})
	return nil
}

// reportProblem sets an Atoll condition (status False) on the master pod and
// records a Warning Event, so `kubectl describe pod` says what is wrong.
func (v *VirtualNode) reportProblem(ctx context.Context, master *corev1.Pod, condType corev1.PodConditionType, reason, message, eventReason string) {
	v.recorder.Event(master, corev1.EventTypeWarning, eventReason, message)
	status := corev1.ConditionFalse
	if condType == ConditionNameConflict {
		status = corev1.ConditionTrue
	}
	c := corev1.PodCondition{Type: condType, Status: status, Reason: reason, Message: message}
	if cur := findCondition(master.Status.Conditions, condType); cur != nil && cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
		return
	}
	m := master.DeepCopy()
	setCondition(&m.Status, c, time.Now())
	if m.Status.Phase == "" {
		m.Status.Phase = corev1.PodPending
	}
	if err := v.writeStatus(ctx, m); err != nil {
		v.log.Debug("write condition", "namespace", m.Namespace, "name", m.Name, "condition", condType, "err", err)
	}
}

// ReasonDaemonSetPod is the reason of ConditionDelegated (False) and of
// the Warning Event on a DaemonSet's pod bound to a virtual node.
const ReasonDaemonSetPod = "DaemonSetPod"

// IsDaemonSetPod reports whether a DaemonSet controls the pod.
func IsDaemonSetPod(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// refuseDaemonSetPod leaves a DaemonSet's pod undelegated: a virtual node
// is a whole cluster, and one copy of a per-node agent in it would be
// neither per node nor what the DaemonSet means. The pod stays Pending
// with ConditionDelegated False and one Warning Event; nothing fails, so
// the DaemonSet controller has nothing to replace.
func (v *VirtualNode) refuseDaemonSetPod(ctx context.Context, master *corev1.Pod) {
	if c := findCondition(master.Status.Conditions, ConditionDelegated); c != nil && c.Reason == ReasonDaemonSetPod {
		return
	}
	v.reportProblem(ctx, master, ConditionDelegated, ReasonDaemonSetPod,
		"DaemonSet pods are not delegated: this virtual node is a whole cluster; run the DaemonSet in that cluster itself, or keep it off virtual nodes with a taint it does not tolerate",
		ReasonDaemonSetPod)
}

// ReasonNamespaceNotServed is the reason of ConditionDelegated (False) and
// of the Warning Event on a pod bound to a namespaced virtual node
// (NodeSpec.RemoteNamespaces) whose namespace maps to a remote namespace
// outside the node's.
const ReasonNamespaceNotServed = "NamespaceNotServed"

// refuseNotServed leaves undelegated a pod whose remote namespace the node
// may not use, like refuseDaemonSetPod: Pending, ConditionDelegated False,
// one Warning Event, nothing for its controller to replace.
func (v *VirtualNode) refuseNotServed(ctx context.Context, master *corev1.Pod, remoteNS string) {
	if c := findCondition(master.Status.Conditions, ConditionDelegated); c != nil && c.Reason == ReasonNamespaceNotServed {
		return
	}
	v.reportProblem(ctx, master, ConditionDelegated, ReasonNamespaceNotServed,
		fmt.Sprintf("this virtual node runs pods only in the remote namespaces %s; this pod's would be %s: keep it off the node (a taint its namespace does not tolerate), or serve that namespace (the Cluster's spec.namespaces.restrictTo, and Atoll's Role there)",
			strings.Join(v.remote.scope, ", "), remoteNS),
		ReasonNamespaceNotServed)
}

// markRemoteDeleted fails a master pod whose remote copy was deleted outside
// Atoll, so its controller replaces it.
func (v *VirtualNode) markRemoteDeleted(ctx context.Context, master *corev1.Pod) error {
	m := master.DeepCopy()
	m.Status = remoteDeletedStatus(master.Status, time.Now())
	if err := v.writeStatus(ctx, m); err != nil {
		v.recordError("status", err)
		return err
	}
	v.recorder.Event(master, corev1.EventTypeWarning, ReasonRemoteDeleted, "the remote pod was deleted outside Atoll")
	v.log.Info("remote pod deleted behind our back; master pod failed", "namespace", master.Namespace, "name", master.Name)
	return nil
}

// writeStatus writes a master pod's status.
func (v *VirtualNode) writeStatus(ctx context.Context, pod *corev1.Pod) error {
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	_, err := v.master.client.CoreV1().Pods(pod.Namespace).UpdateStatus(cctx, pod, metav1.UpdateOptions{})
	return err
}

func (v *VirtualNode) forgetObserved(k workKey) {
	v.observedMu.Lock()
	delete(v.observed, k)
	v.observedMu.Unlock()
}

// syncStatus mirrors the remote pod's status onto the master pod.
func (v *VirtualNode) syncStatus(ctx context.Context, master, remote *corev1.Pod) error {
	k := workKey{kind: keyPod, namespace: master.Namespace, name: master.Name}
	if isTerminal(master.Status.Phase) {
		v.forgetObserved(k)
		return nil
	}
	if !v.healthy.Load() {
		return nil // the remote cache is stale; the next resync writes it
	}
	want := MasterPodStatus(master, remote, v.cfg.NodeIP)
	if statusEqual(&master.Status, &want) {
		v.forgetObserved(k)
		return nil
	}
	// A shallow copy: the write only reads it, and the status is new.
	m := &corev1.Pod{TypeMeta: master.TypeMeta, ObjectMeta: master.ObjectMeta, Spec: master.Spec, Status: want}
	err := v.writeStatus(ctx, m)
	if apierrors.IsConflict(err) {
		// Our cache is behind (often our own previous write): read the pod
		// and try once more right away rather than after a backoff.
		err = v.retryStatusLive(ctx, master, remote)
		if errors.Is(err, errStatusSkipped) {
			return nil
		}
	}
	if err != nil {
		if !apierrors.IsNotFound(err) {
			v.recordError("status", err)
		}
		return fmt.Errorf("write status of %s/%s: %w", master.Namespace, master.Name, err)
	}
	v.observedMu.Lock()
	if t, ok := v.observed[k]; ok {
		v.metrics.statusSync.WithLabelValues(v.name).Observe(time.Since(t).Seconds())
		delete(v.observed, k)
	}
	v.observedMu.Unlock()
	return nil
}

// errStatusSkipped says a live read showed the status must not be written.
var errStatusSkipped = errors.New("status write skipped after a live read")

// retryStatusLive rereads the master pod and writes the status computed
// from it, once.
func (v *VirtualNode) retryStatusLive(ctx context.Context, master, remote *corev1.Pod) error {
	cctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
	defer cancel()
	live, err := v.master.client.CoreV1().Pods(master.Namespace).Get(cctx, master.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if live.UID != master.UID || isTerminal(live.Status.Phase) {
		return errStatusSkipped
	}
	want := MasterPodStatus(live, remote, v.cfg.NodeIP)
	if statusEqual(&live.Status, &want) {
		return nil
	}
	live.Status = want
	return v.writeStatus(ctx, live)
}

// cloneLabels is maps.Clone that never returns nil.
func cloneLabels(in map[string]string) map[string]string {
	out := maps.Clone(in)
	if out == nil {
		out = map[string]string{}
	}
	return out
}
