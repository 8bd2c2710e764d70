package reconcile_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/atoll-dev/atoll/reconcile"
	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
)

// TestTolerateIn: a virtual node carries the provider taint by default, so
// an unchanged Deployment stays off it — unless its namespace is one a
// policy's tolerateIn selects: then `atoll watch`'s admission webhook, on
// the master's real API server, adds the tolerations and the Deployment
// runs on the virtual node.
func TestTolerateIn(t *testing.T) {
	fleettest.CleanNodes(t, master)
	ns := atollNamespace(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Shipped empty by deploy/master: Atoll may update it, not create it.
	const config = "atoll"
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: config}}
	if _, err := master.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(testenv.Context(t), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = master.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), config, metav1.DeleteOptions{})
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "remote-1.yaml"), fleettest.TaintedClusterYAML("remote-1", remoteKubeconfig["remote-1"]))
	writeFile(t, filepath.Join(dir, "policy.yaml"), `apiVersion: atoll.dev/v1alpha1
kind: PlacementPolicy
metadata:
  name: e2e-delegate
spec:
  clusterSelector: {}
  node:
    taints: [{key: e2e-dedicated, value: "yes", effect: NoSchedule}]
  tolerateIn:
    namespaceSelector:
      matchLabels: {e2e-delegate: "yes"}
`)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	fleettest.StartAtoll(t, env, atollBin, "tolerate", "watch", "--dir", dir, "--kubeconfig", fleettest.AtollKubeconfig(t, env, ns), "--namespace", ns,
		"--node-ip", "127.0.0.1", "--log-level", "info",
		"--admission-addr", addr, "--admission-url", "https://"+addr, "--admission-config", config)

	testenv.WaitFor(t, time.Minute, "remote-1 Ready with the provider and the policy's taints", func(ctx context.Context) (bool, error) {
		n, err := master.CoreV1().Nodes().Get(ctx, "remote-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var keys []string
		for _, tt := range n.Spec.Taints {
			keys = append(keys, tt.ToString())
		}
		ready, _ := fleettest.NodeReady(ctx, master, "remote-1")
		want := []string{"e2e-dedicated=yes:NoSchedule", reconcile.ProviderTaint.String()}
		return ready && strings.Join(keys, ",") == strings.Join(want, ","), fmt.Errorf("ready %v, taints %v", ready, keys)
	})
	testenv.WaitFor(t, time.Minute, "the webhook configured for the policy", func(ctx context.Context) (bool, error) {
		c, err := master.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, config, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(c.Webhooks) == 1 && c.Webhooks[0].Name == "e2e-delegate.tolerate.atoll.dev" && len(c.Webhooks[0].ClientConfig.CABundle) > 0, nil
	})

	opted := fleettest.Namespace(t, master, "e2e-opted-in")
	label(t, opted, map[string]string{"e2e-delegate": "yes"})
	plain := fleettest.Namespace(t, master, "e2e-plain")
	for _, n := range []string{opted, plain} {
		testenv.WaitFor(t, time.Minute, "default service account in "+n, func(ctx context.Context) (bool, error) {
			_, err := master.CoreV1().ServiceAccounts(n).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		unchangedDeployment(t, n, "web")
	}
	testenv.WaitFor(t, 2*time.Minute, "the opted-in namespace's pod Running on remote-1", func(ctx context.Context) (bool, error) {
		pods, err := runningPods(ctx, opted, "web")
		for _, node := range pods {
			return node == "remote-1", nil
		}
		return false, err
	})
	testenv.WaitFor(t, time.Minute, "the plain namespace's pod unschedulable: the taints are not tolerated", func(ctx context.Context) (bool, error) {
		l, err := master.CoreV1().Pods(plain).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(l.Items) != 1 {
			return false, err
		}
		p := l.Items[0]
		if p.Spec.NodeName != "" || len(p.Spec.Tolerations) != 2 { // the master's default not-ready/unreachable ones only
			return false, fmt.Errorf("pod %s on %q with tolerations %v", p.Name, p.Spec.NodeName, p.Spec.Tolerations)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return strings.Contains(c.Message, "untolerated taint"), fmt.Errorf("PodScheduled: %s", c.Message)
			}
		}
		return false, nil
	})
}

// label sets labels on namespace ns.
func label(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	ctx := testenv.Context(t)
	n, err := master.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range labels {
		n.Labels[k] = v
	}
	if _, err := master.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// unchangedDeployment creates a one-replica Deployment that says nothing
// about nodes or tolerations.
func unchangedDeployment(t *testing.T, ns, name string) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if _, err := master.AppsV1().Deployments(ns).Create(testenv.Context(t), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
