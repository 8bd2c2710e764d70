// Package kubeletapi_test runs a virtual node with its kubelet API on the
// local test bed and uses it the way people do: plain kubectl against the
// master for logs, exec, attach and port-forward of a delegated pod, and
// direct calls to check that only authorized callers get in.
package kubeletapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-dev/atoll/test/fleettest"
	"github.com/atoll-dev/atoll/test/testenv"
	"github.com/atoll-dev/atoll/vnode"
	"github.com/atoll-dev/atoll/vnode/kubeletapi"
)

const (
	nodeName = "remote-1"
	podName  = "debug-me"
)

var (
	env         *testenv.Env
	master      kubernetes.Interface
	kubeletAddr string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Remotes: 1, NodesPerRemote: 1}, setup))
}

// setup runs a virtual node for the remote with its kubelet API in this
// process, and a pod on it.
func setup(ctx context.Context, e *testenv.Env) (func(), error) {
	env = e
	var err error
	if master, err = env.Master.Clientset(); err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	kubeletAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The node and its kubelet API reach the master and the remote with
	// exactly the rights deploy/master and deploy/remote grant, so logs,
	// exec, attach and port-forward prove those roles too.
	identity := func(kubeconfig string, err error) (*rest.Config, error) {
		if err != nil {
			return nil, err
		}
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	atollMaster, err := identity(fleettest.MasterIdentity(ctx, env.Master, "", env.Dir, 2*time.Hour))
	if err != nil {
		return nil, err
	}
	remote, err := identity(fleettest.RemoteIdentity(ctx, env.Remotes[0], env.Dir, 2*time.Hour))
	if err != nil {
		return nil, err
	}
	atollClient, err := kubernetes.NewForConfig(atollMaster)
	if err != nil {
		return nil, err
	}
	mgr, err := vnode.NewManager(vnode.ManagerConfig{Master: atollMaster, NodeIP: "127.0.0.1", KubeletPort: int32(port), Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(vnode.NodeSpec{Name: nodeName, Remote: remote}); err != nil {
		return nil, err
	}
	// The master apiserver verifies kubelet serving certificates against its
	// CA, and presents a client certificate signed by it.
	srv, err := kubeletapi.New(kubeletapi.Config{
		Addr:         kubeletAddr,
		Locator:      mgr,
		Master:       atollClient,
		ClientCAFile: env.Master.CAFile,
		TLSCertFile:  env.Master.KubeletServingCert,
		TLSKeyFile:   env.Master.KubeletServingKey,
		NodeIP:       "127.0.0.1",
		Logger:       logger,
	})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = mgr.Run(runCtx); done <- struct{}{} }()
	go func() {
		if err := srv.Run(runCtx); err != nil {
			log.Printf("kubelet api: %v", err)
		}
		done <- struct{}{}
	}()
	teardown := func() {
		delCtx, delCancel := context.WithTimeout(context.Background(), time.Minute)
		defer delCancel()
		if err := deletePod(delCtx); err != nil {
			log.Printf("clean up: %v", err)
		}
		cancel()
		<-done
		<-done
	}
	return teardown, startPod(ctx)
}

// startPod creates a pod in the master bound by the scheduler to the virtual
// node, and waits until it runs in the remote.
func startPod(ctx context.Context) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"atoll.dev/cluster": nodeName},
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			}},
		},
	}
	if _, err := master.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod: %w", err)
	}
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := master.CoreV1().Pods("default").Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		return fmt.Errorf("pod never Running in the master (last status %+v): %w", last.Status, err)
	}
	return nil
}

func deletePod(ctx context.Context) error {
	if err := master.CoreV1().Pods("default").Delete(ctx, podName, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := master.CoreV1().Pods("default").Get(ctx, podName, metav1.GetOptions{})
		return err != nil, nil
	})
}

// kubectl runs kubectl against the master and returns its output.
func kubectl(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", env.Master.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := kubectl(t, ctx, "", "logs", podName)
	if want := strings.Join(testenv.ContainerLogLines, "\n") + "\n"; all != want {
		t.Errorf("kubectl logs = %q, want %q", all, want)
	}
	tail := kubectl(t, ctx, "", "logs", podName, "--tail=2")
	if want := strings.Join(testenv.ContainerLogLines[3:], "\n") + "\n"; tail != want {
		t.Errorf("kubectl logs --tail=2 = %q, want %q", tail, want)
	}
	stamped := strings.Split(strings.TrimSpace(kubectl(t, ctx, "", "logs", podName, "--timestamps")), "\n")
	if len(stamped) != len(testenv.ContainerLogLines) {
		t.Fatalf("kubectl logs --timestamps gave %d lines, want %d: %q", len(stamped), len(testenv.ContainerLogLines), stamped)
	}
	for i, line := range stamped {
		ts, msg, ok := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); !ok || err != nil || msg != testenv.ContainerLogLines[i] {
			t.Errorf("line %d = %q, want an RFC 3339 timestamp then %q", i, line, testenv.ContainerLogLines[i])
		}
	}
}

func TestLogsFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", env.Master.Kubeconfig, "logs", "-f", podName)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	for i, want := range testenv.ContainerLogLines {
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("followed line %d = %q, want %q (stderr %s)", i, lines.Text(), want, stderr.String())
		}
	}
	// The stream stays open: a line written now arrives on it.
	fresh := "appended while following " + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := env.Remotes[0].AppendContainerLog(fresh); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || lines.Text() != fresh {
		t.Fatalf("after appending, followed line = %q, want %q (stderr %s)", lines.Text(), fresh, stderr.String())
	}
}

func TestExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got := kubectl(t, ctx, "", "exec", podName, "--", "echo", "hi"); got != "hi\n" {
		t.Errorf("kubectl exec -- echo hi = %q, want %q", got, "hi\n")
	}
	if got := kubectl(t, ctx, "from stdin\n", "exec", "-i", podName, "--", "head", "-n", "1"); got != "from stdin\n" {
		t.Errorf("kubectl exec -i -- head -n 1 = %q, want %q", got, "from stdin\n")
	}
}

func TestAttach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", env.Master.Kubeconfig, "attach", podName)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// What the container writes from now on arrives on the attached stream.
	// The attach may take a moment to be established, so keep writing
	// numbered lines until one shows up.
	seen := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "attached line ") {
				seen <- lines.Text()
				return
			}
		}
		close(seen)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case _, ok := <-seen:
			if !ok {
				t.Fatalf("attach ended before any written line arrived (stderr %s)", stderr.String())
			}
			return
		case <-tick.C:
			if err := env.Remotes[0].AppendContainerLog(fmt.Sprintf("attached line %d", i)); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("no written line arrived through attach (stderr %s)", stderr.String())
		}
	}
}

func TestPortForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", env.Master.Kubeconfig, "port-forward", "pod/"+podName, fmt.Sprintf("%d:8080", local))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var conn net.Conn
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", local), time.Second)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("port-forward never listened: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	// The bed's kwok connects a forwarded port to `cat`: what goes in comes back.
	msg := "round trip through the master\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || got != msg {
		t.Fatalf("read back %q (%v), want %q\nstderr %s", got, err, msg, stderr.String())
	}
}

func TestDirectCallsAreAuthorized(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, err := os.ReadFile(env.Master.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs},
		}}
	}
	get := func(c *http.Client, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+kubeletAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}

	// A service account token the master vouches for, without nodes/proxy.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "no-node-rights"}}
	if _, err := master.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = master.CoreV1().ServiceAccounts("default").Delete(context.Background(), sa.Name, metav1.DeleteOptions{})
	})
	tok, err := master.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// And one whose service account may use nodes/proxy, as RBAC grants it.
	proxySA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "node-proxy"}}
	if _, err := master.CoreV1().ServiceAccounts("default").Create(ctx, proxySA, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-proxy"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}}},
	}
	if _, err := master.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-proxy"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: proxySA.Name}},
	}
	if _, err := master.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = master.RbacV1().ClusterRoleBindings().Delete(bg, binding.Name, metav1.DeleteOptions{})
		_ = master.RbacV1().ClusterRoles().Delete(bg, role.Name, metav1.DeleteOptions{})
		_ = master.CoreV1().ServiceAccounts("default").Delete(bg, proxySA.Name, metav1.DeleteOptions{})
	})
	proxyTok, err := master.CoreV1().ServiceAccounts("default").CreateToken(ctx, proxySA.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	apiserverCert, err := tls.LoadX509KeyPair(env.Master.KubeletClientCert, env.Master.KubeletClientKey)
	if err != nil {
		t.Fatal(err)
	}
	// The same identity signed by another cluster's CA.
	foreignCert, err := tls.LoadX509KeyPair(env.Remotes[0].KubeletClientCert, env.Remotes[0].KubeletClientKey)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/pods", "/containerLogs/default/" + podName + "/app", "/runningpods/", "/healthz"}
	for _, path := range paths {
		if code, body := get(client(foreignCert), path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a certificate of another CA = %d %q, want 401", path, code, body)
		}
		if code, body := get(client(), path, proxyTok.Status.Token); code != http.StatusOK {
			t.Errorf("GET %s with a token allowed nodes/proxy = %d %q, want 200", path, code, body)
		}
		if code, body := get(client(), path, ""); code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s = %d %q, want 401", path, code, body)
		}
		if code, body := get(client(), path, "not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a bogus token = %d %q, want 401", path, code, body)
		}
		if code, body := get(client(), path, tok.Status.Token); code != http.StatusForbidden {
			t.Errorf("GET %s with a token lacking nodes/proxy = %d %q, want 403", path, code, body)
		}
		if code, body := get(client(apiserverCert), path, ""); code != http.StatusOK {
			t.Errorf("GET %s with the master's kubelet client certificate = %d %q, want 200", path, code, body)
		}
	}
}
