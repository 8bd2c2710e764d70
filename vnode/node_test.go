package vnode

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func remoteNode(name string, ready, unschedulable bool, alloc corev1.ResourceList) *corev1.Node {
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	n := &corev1.Node{Spec: corev1.NodeSpec{Unschedulable: unschedulable}, Status: corev1.NodeStatus{
		Allocatable: alloc, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
	}}
	n.Name = name
	return n
}

func podOn(node string, phase corev1.PodPhase, req corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: req}}}},
		Status: corev1.PodStatus{Phase: phase}}
}

func TestRemoteAllocatable(t *testing.T) {
	nodes := []*corev1.Node{
		remoteNode("a", true, false, rl("cpu", "4", "memory", "8Gi", "pods", "110")),
		remoteNode("b", true, false, rl("cpu", "4", "memory", "8Gi", "pods", "110")),
		remoteNode("notready", false, false, rl("cpu", "100", "memory", "100Gi", "pods", "110")),
		remoteNode("cordoned", true, true, rl("cpu", "100", "memory", "100Gi", "pods", "110")),
	}
	tests := []struct {
		name string
		pods []*corev1.Pod
		caps corev1.ResourceList
		want corev1.ResourceList
	}{
		{name: "only schedulable ready nodes count", want: rl("cpu", "8", "memory", "16Gi", "pods", "220")},
		{
			name: "running pods on counted nodes are subtracted, others not",
			pods: []*corev1.Pod{
				podOn("a", corev1.PodRunning, rl("cpu", "1500m", "memory", "1Gi")),
				podOn("b", corev1.PodPending, rl("cpu", "500m")),
				podOn("b", corev1.PodSucceeded, rl("cpu", "3")),
				podOn("notready", corev1.PodRunning, rl("cpu", "3")),
			},
			want: rl("cpu", "6", "memory", "15Gi", "pods", "218"),
		},
		{name: "caps", caps: rl("cpu", "5", "nvidia.com/gpu", "2"), want: rl("cpu", "5", "memory", "16Gi", "pods", "220", "nvidia.com/gpu", "2")},
		{name: "a cap above what is there does not raise it", caps: rl("cpu", "400"), want: rl("cpu", "8", "memory", "16Gi", "pods", "220")},
		{name: "never negative", pods: []*corev1.Pod{podOn("a", corev1.PodRunning, rl("cpu", "20"))}, want: rl("cpu", "0", "memory", "16Gi", "pods", "219")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RemoteAllocatable(nodes, tt.pods, tt.caps)
			if !equality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("RemoteAllocatable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodRequestsInitContainers(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "2")}}},
		Containers: []corev1.Container{
			{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "500m", "memory", "1Gi")}},
			{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "500m")}},
		},
		Overhead: rl("memory", "100Mi"),
	}}
	want := rl("cpu", "2", "memory", "1124Mi")
	if got := podRequests(p); !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("podRequests = %v, want %v", got, want)
	}
}

func TestApplyNodeSpec(t *testing.T) {
	spec := NodeSpec{
		Name:   "cern-001",
		Labels: map[string]string{"region": "geneva", "gpu": "true"},
		Taints: []corev1.Taint{{Key: "virtual-kubelet.io/provider", Value: "atoll", Effect: corev1.TaintEffectNoSchedule}},
	}
	n := &corev1.Node{}
	n.Name = "cern-001"
	if !applyNodeSpec(n, spec) {
		t.Fatal("first apply must report a change")
	}
	wantLabels := map[string]string{
		"region": "geneva", "gpu": "true", "type": "virtual-kubelet", "kubernetes.io/role": "agent",
		LabelCluster: "cern-001", corev1.LabelHostname: "cern-001", corev1.LabelOSStable: "linux",
	}
	if diff := cmp.Diff(wantLabels, n.Labels); diff != "" {
		t.Fatalf("labels (-want +got):\n%s", diff)
	}
	if applyNodeSpec(n, spec) {
		t.Fatal("applying the same spec again must be a no-op")
	}
	// Someone else adds a label and a taint (e.g. the node lifecycle controller).
	n.Labels["someone/else"] = "x"
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute})

	spec.Labels = map[string]string{"region": "geneva"}
	spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "ml", Effect: corev1.TaintEffectNoSchedule}}
	spec.Cordon = true
	if !applyNodeSpec(n, spec) {
		t.Fatal("a changed spec must report a change")
	}
	if _, ok := n.Labels["gpu"]; ok {
		t.Fatal("a label removed from the spec must be removed from the node")
	}
	if n.Labels["someone/else"] != "x" {
		t.Fatal("a foreign label must be kept")
	}
	wantTaints := []corev1.Taint{
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
		{Key: "dedicated", Value: "ml", Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(wantTaints, n.Spec.Taints); diff != "" {
		t.Fatalf("taints (-want +got):\n%s", diff)
	}
	if !n.Spec.Unschedulable {
		t.Fatal("cordon must set unschedulable")
	}
	spec.Cordon = false
	applyNodeSpec(n, spec)
	if n.Spec.Unschedulable {
		t.Fatal("uncordon must clear unschedulable")
	}
}

func TestNodeStatus(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := nodeState{Ready: true, Allocatable: rl("cpu", "8"), NodeIP: "192.0.2.1", KubeletPort: 10250, RemoteVersion: "v1.37.2"}
	s1 := nodeStatus(corev1.NodeStatus{}, st, "n", t0)
	if c := s1.Conditions[0]; c.Type != corev1.NodeReady || c.Status != corev1.ConditionTrue {
		t.Fatalf("Ready = %+v", c)
	}
	s2 := nodeStatus(s1, st, "n", t0.Add(time.Minute))
	if nodeStatusChanged(s1, s2) {
		t.Fatal("only the heartbeat moved; no write is needed")
	}
	if !s2.Conditions[0].LastTransitionTime.Time.Equal(t0) {
		t.Fatal("an unchanged condition must keep its transition time")
	}
	st.Ready, st.Reason = false, "RemoteUnreachable"
	s3 := nodeStatus(s2, st, "n", t0.Add(2*time.Minute))
	if !nodeStatusChanged(s2, s3) {
		t.Fatal("Ready -> NotReady must be written")
	}
	if c := s3.Conditions[0]; c.Status != corev1.ConditionFalse || c.Reason != "RemoteUnreachable" || !c.LastTransitionTime.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("NotReady = %+v", c)
	}
}

func TestNodeSpecValidate(t *testing.T) {
	ok := NodeSpec{Name: "cern-001", Remote: &rest.Config{Host: "https://x"}}
	tests := []struct {
		name    string
		mutate  func(*NodeSpec)
		wantErr bool
	}{
		{name: "ok", mutate: func(*NodeSpec) {}},
		{name: "bad name", mutate: func(s *NodeSpec) { s.Name = "Not_DNS" }, wantErr: true},
		{name: "no remote", mutate: func(s *NodeSpec) { s.Remote = nil }, wantErr: true},
		{name: "prefix without prefix", mutate: func(s *NodeSpec) { s.NamespaceMode = NamespacePrefix }, wantErr: true},
		{name: "prefix", mutate: func(s *NodeSpec) { s.NamespaceMode, s.NamespacePrefix = NamespacePrefix, "hub-" }},
		{name: "unknown mode", mutate: func(s *NodeSpec) { s.NamespaceMode = "Other" }, wantErr: true},
		{name: "bad label", mutate: func(s *NodeSpec) { s.Labels = map[string]string{"a b": "c"} }, wantErr: true},
		{name: "bad taint effect", mutate: func(s *NodeSpec) { s.Taints = []corev1.Taint{{Key: "k", Effect: "Sometimes"}} }, wantErr: true},
		{name: "taint", mutate: func(s *NodeSpec) {
			s.Taints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok.clone()
			tt.mutate(&s)
			err := s.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// TestHealthForgetsOldErrors: an error shows in Health until it is
// ErrorRetention old without recurring.
func TestHealthForgetsOldErrors(t *testing.T) {
	v := &VirtualNode{name: "n", metrics: mustMetrics(t)}
	v.recordError("create", errors.New("quota exceeded"))
	if h := v.Health(); h.LastError != "create: quota exceeded" {
		t.Fatalf("fresh error: LastError = %q", h.LastError)
	}
	v.healthMu.Lock()
	v.health.LastErrorTime = time.Now().Add(-ErrorRetention - time.Second)
	v.healthMu.Unlock()
	if h := v.Health(); h.LastError != "" || !h.LastErrorTime.IsZero() {
		t.Errorf("error older than ErrorRetention still reported: %+v", h)
	}
	v.recordError("create", errors.New("quota exceeded again"))
	if h := v.Health(); h.LastError != "create: quota exceeded again" {
		t.Errorf("recurring error: LastError = %q", h.LastError)
	}
}

func mustMetrics(t *testing.T) *nodeMetrics {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
