package vnode

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMasterPodStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	masterScheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0}
	tests := []struct {
		name   string
		master corev1.PodStatus
		remote corev1.PodStatus
		want   corev1.PodStatus
	}{
		{
			name:   "running",
			master: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{masterScheduled}},
			remote: corev1.PodStatus{
				Phase: corev1.PodRunning, HostIP: "10.0.0.7", HostIPs: []corev1.HostIP{{IP: "10.0.0.7"}},
				PodIP: "10.244.1.5", PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}, StartTime: &t1, QOSClass: corev1.PodQOSBurstable,
				Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t1},
					{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t1},
				},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t1}}}},
			},
			want: corev1.PodStatus{
				Phase: corev1.PodRunning, HostIP: "192.0.2.1", HostIPs: []corev1.HostIP{{IP: "192.0.2.1"}},
				PodIP: "10.244.1.5", PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}, StartTime: &t1, QOSClass: corev1.PodQOSBurstable,
				Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t1},
					masterScheduled,
					{Type: ConditionDelegated, Status: corev1.ConditionTrue, Reason: "RemotePodCreated", Message: "remote pod shop/web", LastTransitionTime: t0},
					{Type: ConditionRemoteScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t1},
				},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t1}}}},
			},
		},
		{
			name: "remote unschedulable keeps master scheduled, shows the remote reason; foreign and stale conditions",
			master: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				masterScheduled,
				{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI"},
				{Type: ConditionNameConflict, Status: corev1.ConditionTrue, Reason: "NameConflict"},
			}},
			remote: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient cpu.", LastTransitionTime: t1},
			}},
			want: corev1.PodStatus{Phase: corev1.PodPending, HostIP: "192.0.2.1", HostIPs: []corev1.HostIP{{IP: "192.0.2.1"}}, Conditions: []corev1.PodCondition{
				masterScheduled,
				{Type: ConditionDelegated, Status: corev1.ConditionTrue, Reason: "RemotePodCreated", Message: "remote pod shop/web", LastTransitionTime: t0},
				{Type: ConditionRemoteScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient cpu.", LastTransitionTime: t1},
				{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			master := &corev1.Pod{Status: tt.master}
			remote := &corev1.Pod{Status: tt.remote}
			remote.Name, remote.Namespace, remote.CreationTimestamp = "web", "shop", t0
			got := MasterPodStatus(master, remote, "192.0.2.1")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MasterPodStatus (-want +got):\n%s", diff)
			}
			if !statusEqual(&got, &tt.want) {
				t.Error("statusEqual disagrees with cmp")
			}
		})
	}
}

func TestRemoteDeletedStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	started := metav1.NewTime(now.Add(-time.Hour))
	cur := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			{Type: ConditionDelegated, Status: corev1.ConditionTrue},
		},
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}},
			{Name: "b", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}},
		},
	}
	got := remoteDeletedStatus(cur, now)
	if got.Phase != corev1.PodFailed || got.Reason != ReasonRemoteDeleted {
		t.Fatalf("phase/reason = %s/%s, want Failed/%s", got.Phase, got.Reason, ReasonRemoteDeleted)
	}
	a := got.ContainerStatuses[0]
	if a.Ready || a.State.Terminated == nil || a.State.Terminated.Reason != ReasonRemoteDeleted || !a.State.Terminated.StartedAt.Equal(&started) {
		t.Fatalf("running container not terminated: %+v", a)
	}
	if got.ContainerStatuses[1].State.Terminated.Reason != "Completed" {
		t.Fatal("an already terminated container must keep its state")
	}
	if c := findCondition(got.Conditions, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse {
		t.Fatalf("Ready condition = %+v, want False", c)
	}
	if hasCondition(&corev1.Pod{Status: got}, ConditionDelegated) {
		t.Fatal("Delegated must be False after RemoteDeleted")
	}
	if cur.Phase != corev1.PodRunning || cur.ContainerStatuses[0].State.Running == nil {
		t.Fatal("remoteDeletedStatus changed its input")
	}
}

func TestSetCondition(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s corev1.PodStatus
	setCondition(&s, corev1.PodCondition{Type: "x", Status: corev1.ConditionFalse, Reason: "A"}, t0)
	setCondition(&s, corev1.PodCondition{Type: "x", Status: corev1.ConditionFalse, Reason: "B"}, t0.Add(time.Hour))
	if len(s.Conditions) != 1 || s.Conditions[0].Reason != "B" || !s.Conditions[0].LastTransitionTime.Time.Equal(t0) {
		t.Fatalf("same status must keep the transition time: %+v", s.Conditions)
	}
	setCondition(&s, corev1.PodCondition{Type: "x", Status: corev1.ConditionTrue}, t0.Add(2*time.Hour))
	if !s.Conditions[0].LastTransitionTime.Time.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("a status change must move the transition time: %+v", s.Conditions)
	}
}

// TestClaimsCondition: a pod mounting PersistentVolumeClaims says, in its
// master status, that the claims are not copied; one without says nothing.
func TestClaimsCondition(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	remote := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", CreationTimestamp: t0}}
	if c := findCondition(MasterPodStatus(&corev1.Pod{}, remote, "").Conditions, ConditionClaimsCopied); c != nil {
		t.Fatalf("condition %+v on a pod without claims", c)
	}
	remote.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db-data"}}},
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		{Name: "logs", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db-logs"}}},
	}
	got := findCondition(MasterPodStatus(&corev1.Pod{}, remote, "").Conditions, ConditionClaimsCopied)
	want := &corev1.PodCondition{Type: ConditionClaimsCopied, Status: corev1.ConditionFalse, Reason: ReasonClaimsNotCopied, LastTransitionTime: t0,
		Message: "Atoll does not copy PersistentVolumeClaims or their data: the claims db-data, db-logs must exist in namespace shop of the remote cluster"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
	// It keeps the time it first appeared.
	t1 := metav1.NewTime(t0.Add(time.Hour))
	master := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: ConditionClaimsCopied, LastTransitionTime: t1}}}}
	if c := findCondition(MasterPodStatus(master, remote, "").Conditions, ConditionClaimsCopied); c == nil || !c.LastTransitionTime.Equal(&t1) {
		t.Errorf("condition %+v, want it to keep its transition time %s", c, t1)
	}
}
