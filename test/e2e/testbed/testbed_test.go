// Package testbed_test proves the local multi-cluster bed the other suites
// stand on: remotes schedule and run pods on kwok nodes, the master's
// scheduler and controllers work, and no apiserver lets anonymous users in.
package testbed_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/atoll-dev/atoll/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Remotes: 2, NodesPerRemote: 2}, func(_ context.Context, e *testenv.Env) (func(), error) {
		env = e
		return nil, nil
	}))
}

func TestRemotesRunPodsOnKwokNodes(t *testing.T) {
	for _, remote := range env.Remotes {
		t.Run(remote.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cs, err := remote.Clientset()
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: "registry.example/app:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"),
					}},
				}}},
			}
			pod, err = cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			})
			var got *corev1.Pod
			err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				got, err = cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				return got.Status.Phase == corev1.PodRunning, nil
			})
			if err != nil {
				t.Fatalf("pod %s never Running (phase %q, node %q): %v", pod.Name, got.Status.Phase, got.Spec.NodeName, err)
			}
			node, err := cs.CoreV1().Nodes().Get(ctx, got.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("pod scheduled onto %q: %v", got.Spec.NodeName, err)
			}
			if node.Labels["type"] != "kwok" {
				t.Errorf("pod ran on %s, labels %v; want a kwok node", node.Name, node.Labels)
			}
		})
	}
}

// TestKwokNodesKeepLeases checks that kwok renews a Lease for every node it
// plays: without one, the node lifecycle controller turns the nodes NotReady
// after its grace period and every pod on them unready.
func TestKwokNodesKeepLeases(t *testing.T) {
	for _, remote := range env.Remotes {
		t.Run(remote.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cs, err := remote.Clientset()
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) == 0 {
				t.Fatal("no kwok nodes")
			}
			for _, n := range nodes.Items {
				first, err := renewTime(ctx, cs, n.Name)
				if err != nil {
					t.Fatalf("lease of node %s: %v", n.Name, err)
				}
				// A live lease is renewed well within its duration.
				err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
					now, err := renewTime(ctx, cs, n.Name)
					return err == nil && now.After(first), nil
				})
				if err != nil {
					t.Errorf("lease of node %s never renewed after %s: %v", n.Name, first, err)
				}
			}
		})
	}
}

func renewTime(ctx context.Context, cs kubernetes.Interface, node string) (time.Time, error) {
	lease, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return time.Time{}, err
	}
	if lease.Spec.RenewTime == nil {
		return time.Time{}, fmt.Errorf("lease %s has no renew time", node)
	}
	return lease.Spec.RenewTime.Time, nil
}

func TestMasterControllersAndScheduler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := env.Master.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AppsV1().Deployments("default").Delete(context.Background(), "smoke", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
	})
	// The master has no nodes of its own: the pods exist (controller-manager)
	// and the scheduler has tried and reported why they cannot be placed.
	var last string
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=smoke"})
		if err != nil {
			return false, err
		}
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=smoke"})
		if err != nil {
			return false, err
		}
		unschedulable := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					unschedulable++
				}
			}
		}
		last = fmt.Sprintf("%d replicasets, %d pods, %d marked unschedulable by the scheduler", len(rss.Items), len(pods.Items), unschedulable)
		return len(rss.Items) == 1 && len(pods.Items) == 3 && unschedulable == 3, nil
	})
	if err != nil {
		t.Fatalf("deployment never settled: %s: %v", last, err)
	}
}

func TestAnonymousRequestsRefused(t *testing.T) {
	for _, c := range env.Clusters() {
		t.Run(c.Name, func(t *testing.T) {
			ca, err := os.ReadFile(c.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				t.Fatal("no CA certificate in", c.CAFile)
			}
			client := &http.Client{
				Timeout:   5 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
			}
			for _, path := range []string{"/api/v1/namespaces/default/pods", "/api/v1/nodes", "/version", "/readyz"} {
				resp, err := client.Get(c.Server + path)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
					t.Errorf("anonymous GET %s%s = %d, want 401 or 403", c.Server, path, resp.StatusCode)
				}
			}
		})
	}
}
