package vnode

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// quotaNames are, per resource a virtual node advertises, the
// ResourceQuota entries that bound what pods may request of it.
var quotaNames = []struct {
	resource corev1.ResourceName
	names    []corev1.ResourceName
}{
	{corev1.ResourceCPU, []corev1.ResourceName{corev1.ResourceRequestsCPU, corev1.ResourceCPU}},
	{corev1.ResourceMemory, []corev1.ResourceName{corev1.ResourceRequestsMemory, corev1.ResourceMemory}},
	{corev1.ResourcePods, []corev1.ResourceName{corev1.ResourcePods, "count/pods"}},
}

// QuotaAllocatable is what a namespaced virtual node can offer
// (NodeSpec.RemoteNamespaces), which may not read the remote's Nodes.
type QuotaAllocatable struct {
	// Allocatable has, per resource every namespace's ResourceQuotas
	// bound, the sum over the namespaces of the tightest quota's hard
	// limit minus the requests of the namespace's pods not managed by this
	// master (the master's scheduler counts its own). Never negative.
	Allocatable corev1.ResourceList
	// Unbounded names, per resource left out of Allocatable, a namespace
	// whose quotas do not bound it: only a capacity cap of the Cluster
	// can say how much of it there is.
	Unbounded map[corev1.ResourceName]string
}

// RemoteQuotaAllocatable computes a namespaced node's QuotaAllocatable from
// the ResourceQuotas of its namespaces and the non-terminal pods there not
// managed by this master.
func RemoteQuotaAllocatable(namespaces []string, quotas []*corev1.ResourceQuota, pods []*corev1.Pod) QuotaAllocatable {
	used := map[string]corev1.ResourceList{}
	for _, p := range pods {
		if isTerminal(p.Status.Phase) {
			continue
		}
		u := used[p.Namespace]
		if u == nil {
			u = corev1.ResourceList{}
			used[p.Namespace] = u
		}
		req := podRequests(p)
		req[corev1.ResourcePods] = resource.MustParse("1")
		for r, q := range req {
			cur := u[r]
			cur.Add(q)
			u[r] = cur
		}
	}
	out := QuotaAllocatable{Allocatable: corev1.ResourceList{}, Unbounded: map[corev1.ResourceName]string{}}
	for _, qn := range quotaNames {
		total := resource.Quantity{}
		for _, ns := range namespaces {
			limit, ok := tightestQuota(ns, quotas, qn.names)
			if !ok {
				out.Unbounded[qn.resource] = ns
				break
			}
			u := used[ns][qn.resource]
			limit.Sub(u)
			if limit.Sign() > 0 {
				total.Add(limit)
			}
		}
		if _, unbounded := out.Unbounded[qn.resource]; !unbounded {
			out.Allocatable[qn.resource] = total
		}
	}
	return out
}

// tightestQuota returns the smallest hard limit the namespace's quotas set
// under any of names.
func tightestQuota(namespace string, quotas []*corev1.ResourceQuota, names []corev1.ResourceName) (resource.Quantity, bool) {
	var (
		min   resource.Quantity
		found bool
	)
	for _, q := range quotas {
		if q.Namespace != namespace {
			continue
		}
		for _, n := range names {
			if h, ok := q.Spec.Hard[n]; ok && (!found || h.Cmp(min) < 0) {
				min, found = h.DeepCopy(), true
			}
		}
	}
	return min, found
}

// missingCapacity says which resource a namespaced node's Node cannot
// advertise, "" when it can advertise all: a namespace's quotas do not
// bound it (unbounded, QuotaAllocatable.Unbounded) and the Cluster caps
// none of it.
func missingCapacity(unbounded map[corev1.ResourceName]string, caps corev1.ResourceList) string {
	for _, qn := range quotaNames {
		ns, unbounded := unbounded[qn.resource]
		if _, capped := caps[qn.resource]; unbounded && !capped {
			return fmt.Sprintf("no ResourceQuota of the remote namespace %s bounds %s, and the Cluster caps no %s (spec.node.capacity.%s)", ns, qn.resource, qn.resource, qn.resource)
		}
	}
	return ""
}
