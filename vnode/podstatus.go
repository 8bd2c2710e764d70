package vnode

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod conditions Atoll sets on master pods.
const (
	// ConditionDelegated is True once the remote copy exists.
	ConditionDelegated corev1.PodConditionType = "atoll.dev/Delegated"
	// ConditionRemoteScheduled mirrors the remote pod's PodScheduled
	// condition, with the remote scheduler's reason and message.
	ConditionRemoteScheduled corev1.PodConditionType = "atoll.dev/RemoteScheduled"
	// ConditionNameConflict is True while a foreign remote pod (or ConfigMap
	// or Secret) has the name Atoll needs; the foreign object is not touched.
	ConditionNameConflict corev1.PodConditionType = "atoll.dev/NameConflict"
	// ConditionDependenciesReady is False while a required ConfigMap or
	// Secret is missing in the master, or Atoll may not read the
	// namespace's (ReasonDependenciesForbidden).
	ConditionDependenciesReady corev1.PodConditionType = "atoll.dev/DependenciesReady"
	// ConditionRemoteCreated is False while the remote refuses the pod
	// (quota, admission); the create is retried.
	ConditionRemoteCreated corev1.PodConditionType = "atoll.dev/RemoteCreated"
	// ConditionClaimsCopied is False on a pod that mounts
	// PersistentVolumeClaims: Atoll does not copy claims (nor their data),
	// the remote cluster must hold claims of those names itself.
	ConditionClaimsCopied corev1.PodConditionType = "atoll.dev/ClaimsCopied"
	// ConditionRemoteReachable is False on a terminating pod whose remote
	// does not answer: whether its copy still runs is unknown, so the pod
	// stays on the master (see syncDeletion).
	ConditionRemoteReachable corev1.PodConditionType = "atoll.dev/RemoteReachable"

	// ReasonRemoteDeleted is the master pod's status reason when its remote
	// copy was deleted outside Atoll.
	ReasonRemoteDeleted = "RemoteDeleted"
	// ReasonDependenciesForbidden is ConditionDependenciesReady's reason
	// while Atoll may not read the ConfigMaps or Secrets of the pod's
	// namespace (DependencyAccessError).
	ReasonDependenciesForbidden = "DependenciesForbidden"
	// ReasonCopyFateUnknown is ConditionRemoteReachable's reason (and the
	// Warning Event's) while a terminating pod waits for its remote.
	ReasonCopyFateUnknown = "CopyFateUnknown"
)

const atollConditionPrefix = "atoll.dev/"

// MasterPodStatus returns the status the master pod should have, given its
// remote copy: phase, conditions, container statuses, IPs, start time and QoS
// class come from the remote; hostIP is the virtual node's IP; the master's
// own PodScheduled condition stays and the remote one is shown as
// atoll.dev/RemoteScheduled. Conditions others set on the master pod (for
// example DisruptionTarget) are kept.
func MasterPodStatus(master, remote *corev1.Pod, nodeIP string) corev1.PodStatus {
	s := *remote.Status.DeepCopy()
	s.HostIP = nodeIP
	s.HostIPs = nil
	if nodeIP != "" {
		s.HostIPs = []corev1.HostIP{{IP: nodeIP}}
	}
	s.NominatedNodeName = ""
	s.Resize = ""
	s.ResourceClaimStatuses = nil

	remoteTypes := map[corev1.PodConditionType]bool{}
	conds := make([]corev1.PodCondition, 0, len(remote.Status.Conditions)+3)
	for _, c := range remote.Status.Conditions {
		if c.Type == corev1.PodScheduled || strings.HasPrefix(string(c.Type), atollConditionPrefix) {
			continue
		}
		remoteTypes[c.Type] = true
		conds = append(conds, c)
	}
	if c := findCondition(master.Status.Conditions, corev1.PodScheduled); c != nil {
		conds = append(conds, *c)
	}
	delegated := corev1.PodCondition{
		Type:               ConditionDelegated,
		Status:             corev1.ConditionTrue,
		Reason:             "RemotePodCreated",
		Message:            "remote pod " + remote.Namespace + "/" + remote.Name,
		LastTransitionTime: remote.CreationTimestamp,
	}
	if c := findCondition(master.Status.Conditions, ConditionDelegated); c != nil && c.Status == corev1.ConditionTrue {
		delegated.LastTransitionTime = c.LastTransitionTime
	}
	conds = append(conds, delegated)
	if c := findCondition(remote.Status.Conditions, corev1.PodScheduled); c != nil {
		conds = append(conds, corev1.PodCondition{
			Type:               ConditionRemoteScheduled,
			Status:             c.Status,
			Reason:             c.Reason,
			Message:            c.Message,
			LastProbeTime:      c.LastProbeTime,
			LastTransitionTime: c.LastTransitionTime,
		})
	}
	if c := claimsCondition(remote); c != nil {
		if cur := findCondition(master.Status.Conditions, ConditionClaimsCopied); cur != nil {
			c.LastTransitionTime = cur.LastTransitionTime
		} else {
			c.LastTransitionTime = remote.CreationTimestamp
		}
		conds = append(conds, *c)
	}
	for _, c := range master.Status.Conditions {
		if c.Type == corev1.PodScheduled || remoteTypes[c.Type] || strings.HasPrefix(string(c.Type), atollConditionPrefix) {
			continue
		}
		conds = append(conds, c)
	}
	s.Conditions = conds
	return s
}

// ReasonClaimsNotCopied is the reason of ConditionClaimsCopied and of the
// Warning Event a pod mounting PersistentVolumeClaims gets.
const ReasonClaimsNotCopied = "PersistentVolumeClaimsNotCopied"

// claimsCondition returns ConditionClaimsCopied (False) for a remote copy
// that mounts PersistentVolumeClaims, nil for one that mounts none.
func claimsCondition(remote *corev1.Pod) *corev1.PodCondition {
	var claims []string
	for _, vol := range remote.Spec.Volumes {
		if vol.PersistentVolumeClaim != nil {
			claims = append(claims, vol.PersistentVolumeClaim.ClaimName)
		}
	}
	if len(claims) == 0 {
		return nil
	}
	return &corev1.PodCondition{
		Type: ConditionClaimsCopied, Status: corev1.ConditionFalse, Reason: ReasonClaimsNotCopied,
		Message: fmt.Sprintf("Atoll does not copy PersistentVolumeClaims or their data: the claims %s must exist in namespace %s of the remote cluster",
			strings.Join(claims, ", "), remote.Namespace),
	}
}

// statusEqual compares two statuses semantically (quantities, times).
func statusEqual(a, b *corev1.PodStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// remoteDeletedStatus is the status of a master pod whose remote copy was
// deleted outside Atoll: Failed, reason RemoteDeleted, containers terminated.
func remoteDeletedStatus(cur corev1.PodStatus, now time.Time) corev1.PodStatus {
	s := *cur.DeepCopy()
	s.Phase = corev1.PodFailed
	s.Reason = ReasonRemoteDeleted
	s.Message = "The pod's copy in the remote cluster was deleted outside Atoll."
	terminate := func(cs []corev1.ContainerStatus) {
		for i := range cs {
			if cs[i].State.Terminated != nil {
				continue
			}
			started := metav1.Time{}
			if cs[i].State.Running != nil {
				started = cs[i].State.Running.StartedAt
			}
			cs[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode:   137,
				Reason:     ReasonRemoteDeleted,
				StartedAt:  started,
				FinishedAt: metav1.NewTime(now),
			}}
			cs[i].Ready = false
			f := false
			cs[i].Started = &f
		}
	}
	terminate(s.InitContainerStatuses)
	terminate(s.ContainerStatuses)
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		setCondition(&s, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: ReasonRemoteDeleted}, now)
	}
	setCondition(&s, corev1.PodCondition{Type: ConditionDelegated, Status: corev1.ConditionFalse, Reason: ReasonRemoteDeleted,
		Message: "the remote pod was deleted outside Atoll"}, now)
	return s
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func hasCondition(p *corev1.Pod, t corev1.PodConditionType) bool {
	c := findCondition(p.Status.Conditions, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// setCondition sets or replaces a condition, keeping LastTransitionTime when
// the status does not change.
func setCondition(s *corev1.PodStatus, c corev1.PodCondition, now time.Time) {
	if cur := findCondition(s.Conditions, c.Type); cur != nil {
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.NewTime(now)
		}
		*cur = c
		return
	}
	c.LastTransitionTime = metav1.NewTime(now)
	s.Conditions = append(s.Conditions, c)
}
