package vnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// NodeSpec declares one virtual node: which remote cluster it stands for and
// how it looks to the master's scheduler.
type NodeSpec struct {
	// Name is the Node's name in the master (DNS-1123 subdomain).
	Name string
	// Labels are put on the Node in addition to type=virtual-kubelet,
	// kubernetes.io/role=agent and atoll.dev/cluster=Name.
	Labels map[string]string
	// Taints are the Node's taints.
	Taints []corev1.Taint
	// Capacity caps what the Node offers; unset resources are not capped.
	Capacity corev1.ResourceList
	// Cordon marks the Node unschedulable; running pods stay.
	Cordon bool
	// NamespaceMode maps master namespaces to remote ones (default Same).
	NamespaceMode NamespaceMode
	// NamespacePrefix is the prefix for NamespacePrefix mode.
	NamespacePrefix string
	// RemoteNamespaces, when set, confines the node to these remote
	// namespaces, which exist already: its remote identity needs Roles in
	// them only (deploy/remote-namespaced). Atoll then creates and deletes
	// no namespace and reads no remote Node: the Node is Ready while the
	// remote API answers, and its allocatable comes from the namespaces'
	// ResourceQuotas (RemoteQuotaAllocatable). A pod whose namespace maps
	// to another is not delegated (ReasonNamespaceNotServed).
	RemoteNamespaces []string
	// Remote is how to reach the remote cluster's API server.
	Remote *rest.Config
}

// Validate checks a spec; the error names the first problem found.
func (s NodeSpec) Validate() error {
	if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s", s.Name, errs[0])
	}
	if s.Remote == nil {
		return fmt.Errorf("node %s: remote config is required", s.Name)
	}
	switch s.NamespaceMode {
	case "", NamespaceSame:
	case NamespacePrefix:
		if s.NamespacePrefix == "" {
			return fmt.Errorf("node %s: namespace mode Prefix needs a prefix", s.Name)
		}
		if errs := validation.IsDNS1123Label(s.NamespacePrefix + "x"); len(errs) > 0 {
			return fmt.Errorf("node %s: namespace prefix %q: %s", s.Name, s.NamespacePrefix, errs[0])
		}
	default:
		return fmt.Errorf("node %s: unknown namespace mode %q", s.Name, s.NamespaceMode)
	}
	m := s.namespaceMapping()
	for i, ns := range s.RemoteNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("node %s: remote namespace %q: %s", s.Name, ns, errs[0])
		}
		if _, ok := m.Master(ns); !ok {
			return fmt.Errorf("node %s: remote namespace %q does not start with the namespace prefix %q", s.Name, ns, s.NamespacePrefix)
		}
		if slices.Contains(s.RemoteNamespaces[:i], ns) {
			return fmt.Errorf("node %s: remote namespace %q listed twice", s.Name, ns)
		}
	}
	for k, v := range s.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("node %s: label key %q: %s", s.Name, k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("node %s: label %s value %q: %s", s.Name, k, v, errs[0])
		}
	}
	for _, t := range s.Taints {
		if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
			return fmt.Errorf("node %s: taint key %q: %s", s.Name, t.Key, errs[0])
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return fmt.Errorf("node %s: taint %s: unknown effect %q", s.Name, t.Key, t.Effect)
		}
	}
	return nil
}

func (s NodeSpec) namespaceMapping() NamespaceMapping {
	if s.NamespaceMode == NamespacePrefix {
		return NamespaceMapping{Mode: NamespacePrefix, Prefix: s.NamespacePrefix}
	}
	return NamespaceMapping{Mode: NamespaceSame}
}

func (s NodeSpec) clone() NodeSpec {
	c := s
	c.Labels = maps.Clone(s.Labels)
	c.Taints = slices.Clone(s.Taints)
	c.RemoteNamespaces = slices.Clone(s.RemoteNamespaces)
	if s.Capacity != nil {
		c.Capacity = s.Capacity.DeepCopy()
	}
	return c
}

// NodeHealth is a virtual node's health as the Manager reports it.
type NodeHealth struct {
	Name string
	// Ready is true while the remote API answers and has a Ready node.
	Ready bool
	// Reason says why the node is not Ready.
	Reason string
	// DelegatedPods is the number of remote pods this node manages.
	DelegatedPods int
	// LastError is the last error of the past ErrorRetention, with its
	// kind; empty if none. Conflicts on the node's own status write, which
	// the next pass redoes, are not errors.
	LastError     string
	LastErrorTime time.Time
}

// Fixed labels of every virtual node.
const (
	LabelType = "type"
	LabelRole = "kubernetes.io/role"
)

// nodeLabels returns the Node's labels: declared ones, then Atoll's.
func nodeLabels(spec NodeSpec) map[string]string {
	l := cloneLabels(spec.Labels)
	l[LabelType] = "virtual-kubelet"
	l[LabelRole] = "agent"
	l[LabelCluster] = spec.Name
	l[corev1.LabelHostname] = spec.Name
	l[corev1.LabelOSStable] = "linux"
	return l
}

// selectorDroppedLabels returns the node labels whose selector terms only
// target the virtual node; os/arch are real properties remote nodes carry.
func selectorDroppedLabels(l map[string]string) map[string]string {
	out := maps.Clone(l)
	delete(out, corev1.LabelOSStable)
	delete(out, corev1.LabelArchStable)
	return out
}

// annotationApplied records which labels and taints Atoll put on the Node, so
// ones removed from the spec are removed from the Node and others' are kept.
const annotationApplied = "atoll.dev/applied"

type appliedKeys struct {
	Labels []string `json:"labels,omitempty"`
	Taints []string `json:"taints,omitempty"`
}

// nodeState is what the status loop observed about the remote.
type nodeState struct {
	Ready         bool
	Reason        string
	Message       string
	Allocatable   corev1.ResourceList
	NodeIP        string
	KubeletPort   int32
	RemoteVersion string
}

// applyNodeSpec makes node's labels, taints and unschedulable match spec,
// keeping labels and taints Atoll did not put there. It reports whether
// anything changed.
func applyNodeSpec(node *corev1.Node, spec NodeSpec) bool {
	before := node.DeepCopy()
	var prev appliedKeys
	if a := node.Annotations[annotationApplied]; a != "" {
		_ = json.Unmarshal([]byte(a), &prev)
	}
	want := nodeLabels(spec)
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	for _, k := range prev.Labels {
		if _, ok := want[k]; !ok {
			delete(node.Labels, k)
		}
	}
	maps.Copy(node.Labels, want)
	wantTaint := map[string]bool{}
	for _, t := range spec.Taints {
		wantTaint[t.Key+":"+string(t.Effect)] = true
	}
	prevTaint := map[string]bool{}
	for _, k := range prev.Taints {
		prevTaint[k] = true
	}
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		k := t.Key + ":" + string(t.Effect)
		if prevTaint[k] || wantTaint[k] {
			continue // ours: replaced below
		}
		taints = append(taints, t)
	}
	for _, t := range spec.Taints {
		t.TimeAdded = nil
		taints = append(taints, t)
	}
	node.Spec.Taints = taints
	node.Spec.Unschedulable = spec.Cordon
	applied := appliedKeys{Labels: slices.Sorted(maps.Keys(want)), Taints: slices.Sorted(maps.Keys(wantTaint))}
	b, _ := json.Marshal(applied)
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[annotationApplied] = string(b)
	return !equality.Semantic.DeepEqual(before.ObjectMeta, node.ObjectMeta) || !equality.Semantic.DeepEqual(before.Spec, node.Spec)
}

// nodeStatus returns the Node status for an observed state. Conditions keep
// their LastTransitionTime from cur unless their status changes.
func nodeStatus(cur corev1.NodeStatus, st nodeState, name string, now time.Time) corev1.NodeStatus {
	s := corev1.NodeStatus{
		Capacity:    st.Allocatable.DeepCopy(),
		Allocatable: st.Allocatable.DeepCopy(),
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: st.NodeIP},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: st.KubeletPort}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux",
			Architecture:    "amd64",
			KubeletVersion:  st.RemoteVersion,
			OSImage:         "atoll virtual node",
		},
	}
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "RemoteReady",
		Message: "the remote cluster answers and has a Ready node"}
	if !st.Ready {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, st.Reason, st.Message
	}
	conds := []corev1.NodeCondition{ready}
	for _, t := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable} {
		conds = append(conds, corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: "RemoteCluster"})
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = metav1.NewTime(now)
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, c := range cur.Conditions {
			if c.Type == conds[i].Type && c.Status == conds[i].Status {
				conds[i].LastTransitionTime = c.LastTransitionTime
			}
		}
	}
	s.Conditions = conds
	return s
}

// nodeStatusChanged reports whether a write is needed, ignoring heartbeat times.
func nodeStatusChanged(cur, want corev1.NodeStatus) bool {
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		sort.Slice(s.Conditions, func(i, j int) bool { return s.Conditions[i].Type < s.Conditions[j].Type })
		s.Images, s.VolumesAttached, s.VolumesInUse = nil, nil, nil
		return s
	}
	return !equality.Semantic.DeepEqual(strip(cur), strip(want))
}

// RemoteAllocatable is what a remote cluster can still offer: the sum of the
// allocatable of its schedulable Ready nodes, minus the requests of the
// given pods running there (pods not managed by this master), capped per
// resource by caps. Never negative.
func RemoteAllocatable(nodes []*corev1.Node, pods []*corev1.Pod, caps corev1.ResourceList) corev1.ResourceList {
	total := corev1.ResourceList{}
	usable := map[string]bool{}
	for _, n := range nodes {
		if n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		usable[n.Name] = true
		for r, q := range n.Status.Allocatable {
			cur := total[r]
			cur.Add(q)
			total[r] = cur
		}
	}
	for _, p := range pods {
		if !usable[p.Spec.NodeName] || isTerminal(p.Status.Phase) {
			continue
		}
		for r, q := range podRequests(p) {
			if cur, ok := total[r]; ok {
				cur.Sub(q)
				total[r] = cur
			}
		}
		if cur, ok := total[corev1.ResourcePods]; ok {
			cur.Sub(resource.MustParse("1"))
			total[corev1.ResourcePods] = cur
		}
	}
	for r, q := range total {
		if q.Sign() < 0 {
			total[r] = *resource.NewQuantity(0, q.Format)
		}
	}
	return capResources(total, caps)
}

// capResources returns a copy of in with each resource in caps capped.
func capResources(in, caps corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for r, q := range in {
		out[r] = q.DeepCopy()
	}
	for r, c := range caps {
		if cur, ok := out[r]; !ok || cur.Cmp(c) > 0 {
			out[r] = c.DeepCopy()
		}
	}
	return out
}

// podRequests is the effective request of a pod: the larger of the sum over
// its containers and any init container, plus overhead.
func podRequests(p *corev1.Pod) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for r, q := range c.Resources.Requests {
			cur := sum[r]
			cur.Add(q)
			sum[r] = cur
		}
	}
	for _, c := range p.Spec.InitContainers {
		for r, q := range c.Resources.Requests {
			if cur, ok := sum[r]; !ok || q.Cmp(cur) > 0 {
				sum[r] = q.DeepCopy()
			}
		}
	}
	for r, q := range p.Spec.Overhead {
		cur := sum[r]
		cur.Add(q)
		sum[r] = cur
	}
	return sum
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// runNodeStatus keeps the Node object, its status and its Lease up to date
// until ctx is cancelled: it pings the remote every PingInterval, refreshes
// allocatable every CapacityInterval, recreates the Node if it is deleted
// and renews the Lease.
func (v *VirtualNode) runNodeStatus(ctx context.Context) {
	var (
		failures     int
		allocatable  corev1.ResourceList
		unbounded    map[corev1.ResourceName]string // by no quota of a namespaced node
		lastCapacity time.Time
		lastStatus   time.Time
		lastLease    time.Time
		version      = "v0.0.0-atoll"
	)
	ticker := time.NewTicker(v.cfg.PingInterval)
	defer ticker.Stop()
	for {
		up := v.ping(ctx) == nil
		if up {
			failures = 0
		} else {
			failures++
		}
		// Two failed pings in a row mark the remote unreachable: at most
		// about 2*PingInterval+PingTimeout after it stops answering.
		wasHealthy := v.healthy.Load()
		healthy := up || (wasHealthy && failures < 2)
		st := nodeState{NodeIP: v.cfg.NodeIP, KubeletPort: v.cfg.KubeletPort}
		if healthy && (allocatable == nil || time.Since(lastCapacity) >= v.cfg.CapacityInterval) {
			if rv := v.remoteVersion(ctx); rv != "" {
				version = rv
			}
			switch a, u, err := v.computeAllocatable(ctx); {
			case err == nil:
				allocatable, unbounded, lastCapacity = a, u, time.Now()
			case errors.Is(err, errRemoteNodesNotSynced):
				// Unknown yet: asked again on the next tick.
			default:
				v.recordError("capacity", err)
			}
		}
		st.RemoteVersion = version
		spec := v.currentSpec()
		st.Allocatable = capResources(allocatable, spec.Capacity)
		switch {
		case !healthy:
			st.Reason, st.Message = "RemoteUnreachable", "the remote API server does not answer"
		case v.remote.nodes != nil && !v.remoteHasReadyNode():
			// A namespaced node may not read the remote's nodes: it is
			// Ready while the API answers and its capacity is known.
			st.Reason, st.Message = "NoReadyRemoteNode", "the remote cluster has no schedulable Ready node"
		case allocatable == nil:
			// Ready with an unknown allocatable would let the scheduler see
			// an empty node and turn pods away.
			st.Reason, st.Message = "CapacityUnknown", "the remote cluster's capacity is not known yet"
		case missingCapacity(unbounded, spec.Capacity) != "":
			st.Reason, st.Message = "CapacityUnknown", missingCapacity(unbounded, spec.Capacity)
		default:
			st.Ready = true
		}
		v.healthy.Store(healthy)
		v.metrics.remoteUp.WithLabelValues(v.name).Set(boolFloat(healthy))
		if healthy != wasHealthy {
			v.log.Info("remote health changed", "reachable", healthy)
			if healthy {
				v.resyncAll()
			}
		}
		delegated := v.remote.pods.informers.len()
		v.metrics.delegatedPods.WithLabelValues(v.name).Set(float64(delegated))
		written, err := v.syncNode(ctx, spec, st, time.Since(lastStatus) >= time.Minute)
		ready, reason := st.Ready, st.Reason
		if errors.Is(err, ErrNotVirtual) {
			// The Node is someone else's: this node runs nothing.
			ready, reason = false, ReasonNotAtollsNode
		}
		v.healthMu.Lock()
		v.health.Ready, v.health.Reason, v.health.DelegatedPods = ready, reason, delegated
		v.healthMu.Unlock()
		if apierrors.IsConflict(err) {
			// Our cache was behind the Node: the next pass, at most
			// PingInterval away, writes from a fresh copy.
			v.log.Debug("sync node: conflict; retried next pass", "err", err)
		} else if err != nil {
			v.recordError("node", err)
			v.log.Warn("sync node", "err", err)
		} else if written {
			lastStatus = time.Now()
		}
		// A Node that is not Atoll's has its own Lease, not Atoll's to renew.
		if !errors.Is(err, ErrNotVirtual) && time.Since(lastLease) >= v.cfg.LeaseDuration/4 {
			if err := v.renewLease(ctx); err != nil {
				v.recordError("lease", err)
			} else {
				lastLease = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-v.nodeTrigger:
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Ping checks that the remote API server answers within PingTimeout.
func (v *VirtualNode) ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, v.cfg.PingTimeout)
	defer cancel()
	rc := v.remote.client.Discovery().RESTClient()
	if rc == nil {
		_, err := v.remote.client.Discovery().ServerVersion()
		return err
	}
	return rc.Get().AbsPath("/readyz").Do(cctx).Error()
}

func (v *VirtualNode) remoteVersion(ctx context.Context) string {
	rc := v.remote.client.Discovery().RESTClient()
	if rc == nil {
		return ""
	}
	cctx, cancel := context.WithTimeout(ctx, v.cfg.PingTimeout)
	defer cancel()
	b, err := rc.Get().AbsPath("/version").Do(cctx).Raw()
	if err != nil {
		return ""
	}
	var info struct {
		GitVersion string `json:"gitVersion"`
	}
	if json.Unmarshal(b, &info) != nil {
		return ""
	}
	return info.GitVersion
}

func (v *VirtualNode) remoteHasReadyNode() bool {
	for _, obj := range v.remote.nodes.Informer().GetStore().List() {
		if n, ok := obj.(*corev1.Node); ok && !n.Spec.Unschedulable && nodeReady(n) {
			return true
		}
	}
	return false
}

func (v *VirtualNode) remoteNodeChanged(oldObj, newObj any) {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if ok1 && ok2 && (nodeReady(o) != nodeReady(n) || o.Spec.Unschedulable != n.Spec.Unschedulable) {
		v.triggerNode()
	}
}

// errRemoteNodesNotSynced says the remote node cache has not synced yet, so
// no allocatable can be computed.
var errRemoteNodesNotSynced = errors.New("remote node cache not synced")

// computeAllocatable returns what the remote can offer. Cluster-wide, from
// its nodes (cache) and the running pods not managed by this master (paged
// list), see RemoteAllocatable. A namespaced node's from its namespaces'
// ResourceQuotas and the pods there not managed by this master, see
// RemoteQuotaAllocatable, with the resources no quota bounds.
func (v *VirtualNode) computeAllocatable(ctx context.Context) (corev1.ResourceList, map[corev1.ResourceName]string, error) {
	others := LabelMaster + "!=" + v.masterID
	if v.remote.scope.namespaced() {
		var (
			quotas []*corev1.ResourceQuota
			pods   []*corev1.Pod
		)
		for _, ns := range v.remote.scope {
			var list *corev1.ResourceQuotaList
			err := withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) (err error) {
				list, err = v.remote.client.CoreV1().ResourceQuotas(ns).List(c, metav1.ListOptions{})
				return err
			})
			if err != nil {
				return nil, nil, fmt.Errorf("list remote resource quotas in %s: %w", ns, err)
			}
			for i := range list.Items {
				quotas = append(quotas, &list.Items[i])
			}
			p, err := v.listPods(ctx, ns, others, "status.phase!=Succeeded,status.phase!=Failed")
			if err != nil {
				return nil, nil, err
			}
			pods = append(pods, p...)
		}
		a := RemoteQuotaAllocatable(v.remote.scope, quotas, pods)
		return a.Allocatable, a.Unbounded, nil
	}
	if !v.remote.nodes.Informer().HasSynced() {
		return nil, nil, errRemoteNodesNotSynced
	}
	var nodes []*corev1.Node
	for _, obj := range v.remote.nodes.Informer().GetStore().List() {
		if n, ok := obj.(*corev1.Node); ok {
			nodes = append(nodes, n)
		}
	}
	pods, err := v.listPods(ctx, metav1.NamespaceAll, others, "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed")
	if err != nil {
		return nil, nil, err
	}
	return RemoteAllocatable(nodes, pods, nil), nil, nil
}

// listPods lists the remote pods of a namespace (all: NamespaceAll) by
// selectors, 500 a page, keeping of each what capacity reads: namespace,
// node, containers, init containers, overhead and phase.
func (v *VirtualNode) listPods(ctx context.Context, namespace, labelSelector, fieldSelector string) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	opts := metav1.ListOptions{LabelSelector: labelSelector, FieldSelector: fieldSelector, Limit: 500}
	for {
		var list *corev1.PodList
		err := withTimeout(ctx, v.cfg.RequestTimeout, func(c context.Context) (err error) {
			list, err = v.remote.client.CoreV1().Pods(namespace).List(c, opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list remote pods: %w", err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace},
				Spec: corev1.PodSpec{NodeName: p.Spec.NodeName, Containers: p.Spec.Containers,
					InitContainers: p.Spec.InitContainers, Overhead: p.Spec.Overhead}, Status: corev1.PodStatus{Phase: p.Status.Phase}})
		}
		if list.Continue == "" {
			return pods, nil
		}
		opts.Continue = list.Continue
	}
}

// syncNode creates the Node if missing and brings its metadata, spec and
// status in line. It reports whether the status was written.
func (v *VirtualNode) syncNode(ctx context.Context, spec NodeSpec, st nodeState, heartbeat bool) (bool, error) {
	nodes := v.master.client.CoreV1().Nodes()
	t := v.cfg.RequestTimeout
	// The cache is enough: a stale read ends in AlreadyExists (then the
	// Node is read) or Conflict (the next pass, at most PingInterval
	// later, gets it right).
	var cur *corev1.Node
	read := func() error {
		return withTimeout(ctx, t, func(c context.Context) (err error) {
			cur, err = nodes.Get(c, v.name, metav1.GetOptions{})
			return err
		})
	}
	cur, err := v.master.nodes.Lister().Get(v.name)
	if err == nil {
		cur = cur.DeepCopy()
	} else if apierrors.IsNotFound(err) && !v.master.nodes.Informer().HasSynced() {
		err = read()
	}
	if apierrors.IsNotFound(err) {
		written, cerr := v.createNode(ctx, spec, st)
		if !apierrors.IsAlreadyExists(cerr) {
			return written, cerr
		}
		// The cache lags, or the Node is not Atoll's: it is read.
		err = read()
	}
	if err != nil {
		return false, fmt.Errorf("get node: %w", err)
	}
	if !IsVirtualNode(cur) {
		return false, errNotVirtual(cur)
	}
	if applyNodeSpec(cur, spec) {
		if err := withTimeout(ctx, t, func(c context.Context) (err error) {
			cur, err = nodes.Update(c, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
			return false, fmt.Errorf("update node: %w", err)
		}
	}
	want := nodeStatus(cur.Status, st, v.name, time.Now())
	if !heartbeat && !nodeStatusChanged(cur.Status, want) {
		return false, nil
	}
	cur.Status = want
	var updated *corev1.Node
	if err := withTimeout(ctx, t, func(c context.Context) (err error) {
		updated, err = nodes.UpdateStatus(c, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return false, fmt.Errorf("write node status: %w", err)
	}
	v.notifyNode(updated)
	return true, nil
}

// createNode registers the Node with its status. It reports whether the
// status was written; AlreadyExists is returned as is.
func (v *VirtualNode) createNode(ctx context.Context, spec NodeSpec, st nodeState) (bool, error) {
	nodes := v.master.client.CoreV1().Nodes()
	t := v.cfg.RequestTimeout
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: v.name}}
	applyNodeSpec(n, spec)
	n.Status = nodeStatus(corev1.NodeStatus{}, st, v.name, time.Now())
	var created *corev1.Node
	err := withTimeout(ctx, t, func(c context.Context) (err error) {
		created, err = nodes.Create(c, n, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("create node: %w", err)
	}
	v.log.Info("registered node")
	created.Status = n.Status
	if err := withTimeout(ctx, t, func(c context.Context) (err error) {
		created, err = nodes.UpdateStatus(c, created, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return false, fmt.Errorf("write node status: %w", err)
	}
	v.notifyNode(created)
	return true, nil
}

// renewLease creates or renews the node's Lease in kube-node-lease.
func (v *VirtualNode) renewLease(ctx context.Context) error {
	leases := v.master.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	t := v.cfg.RequestTimeout
	now := metav1.NewMicroTime(time.Now())
	var l *coordinationv1.Lease
	err := withTimeout(ctx, t, func(c context.Context) (err error) {
		l, err = leases.Get(c, v.name, metav1.GetOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		var owner []metav1.OwnerReference
		if n, err := v.master.nodes.Lister().Get(v.name); err == nil {
			owner = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
		}
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: corev1.NamespaceNodeLease, OwnerReferences: owner},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(v.name),
				LeaseDurationSeconds: ptr.To(int32(v.cfg.LeaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		return withTimeout(ctx, t, func(c context.Context) error {
			_, err := leases.Create(c, l, metav1.CreateOptions{})
			return err
		})
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	l.Spec.HolderIdentity = ptr.To(v.name)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(v.cfg.LeaseDuration / time.Second))
	err = withTimeout(ctx, t, func(c context.Context) error {
		_, err := leases.Update(c, l, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsConflict(err) {
		return errors.New("lease changed concurrently; renewed next time")
	}
	return err
}
