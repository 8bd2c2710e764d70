// Package bedcommand_test drives the test bed's command the way a developer
// does: up, kubectl against a remote, status, down.
package bedcommand_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/atoll-dev/atoll/test/testenv"
)

func TestUpKubectlDown(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is required: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := testenv.Build(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "env")
	run(t, ctx, "go", "build", "-o", bin, "github.com/atoll-dev/atoll/test/env")
	dir := filepath.Join(tmp, "bed")

	out := run(t, ctx, bin, "up", "--dir", dir, "--remotes", "2", "--nodes-per-remote", "2")
	procs, err := testenv.Status(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop whatever is left if an assertion below failed first.
		_, _ = testenv.Down(context.Background(), dir)
	})
	if !strings.Contains(out, "remote-2") {
		t.Errorf("up printed no remote-2 line:\n%s", out)
	}
	// etcd, 3 × (apiserver, scheduler, controller-manager), 2 × kwok.
	if len(procs) != 12 {
		t.Fatalf("state lists %d processes, want 12: %+v", len(procs), procs)
	}

	nodesJSON := run(t, ctx, "kubectl", "--kubeconfig", filepath.Join(dir, "remote-2.kubeconfig"), "get", "nodes", "-o", "json")
	var nodes corev1.NodeList
	if err := json.Unmarshal([]byte(nodesJSON), &nodes); err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && n.Labels["type"] == "kwok" {
				ready++
			}
		}
	}
	if ready != 2 {
		t.Errorf("kubectl get nodes on remote-2: %d Ready kwok nodes, want 2", ready)
	}

	status := run(t, ctx, bin, "status", "--dir", dir)
	if n := strings.Count(status, " running"); n != 12 {
		t.Errorf("status shows %d running processes, want 12:\n%s", n, status)
	}

	run(t, ctx, bin, "down", "--dir", dir)
	for _, p := range procs {
		if alive(p.Pid) {
			t.Errorf("%s (pid %d) still runs after down", p.Name, p.Pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd")); !os.IsNotExist(err) {
		t.Errorf("etcd data left behind after down: %v", err)
	}
}

// alive reports whether pid is a live process. An exited process whose
// parent has not reaped it yet (state Z) is not alive.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
