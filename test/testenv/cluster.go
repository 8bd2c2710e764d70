package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeletClientUser is the user name in the master apiserver's kubelet client
// certificate. It is bound to system:kubelet-api-admin, as kubeadm does, so
// a kubelet API that authorizes with SubjectAccessReview lets it in.
const KubeletClientUser = "kube-apiserver-kubelet-client"

// Cluster is one cluster of the bed: the master or a remote.
type Cluster struct {
	// Name is "master" or "remote-N".
	Name string
	// Kubeconfig is the path of an admin kubeconfig that carries the
	// cluster's CA and a client certificate in system:masters.
	Kubeconfig string
	// Config is the admin rest config.
	Config *rest.Config
	// Server is the apiserver's URL.
	Server string
	// CAFile is the cluster CA. It signs the apiserver's serving certificate,
	// every client certificate of the cluster, and the kubelet serving
	// certificates the apiserver accepts.
	CAFile string
	// KubeletClientCert and KubeletClientKey are what this apiserver presents
	// to kubelets (user KubeletClientUser, signed by CAFile).
	KubeletClientCert, KubeletClientKey string
	// KubeletServingCert and KubeletServingKey are a serving certificate for
	// 127.0.0.1 that this apiserver trusts when it calls a kubelet there.
	KubeletServingCert, KubeletServingKey string

	dir          string // the cluster's own directory under the bed's
	containerLog string // what kwok serves as every container's log (remotes)
	ca           *authority
	apiserver    *Process
	others       []*Process // scheduler, controller-manager, kwok
}

// Clientset returns an admin clientset for the cluster.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.Config)
}

// IssueClientCert signs a client certificate for user (and groups) with the
// cluster's CA and returns a rest config that authenticates with it. Tests use
// it for users with less than admin's rights.
func (c *Cluster) IssueClientCert(user string, groups ...string) (*rest.Config, error) {
	kp, err := c.ca.issue(user, groups, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", user, err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.CertData, cfg.KeyData = kp.Cert, kp.Key
	cfg.CertFile, cfg.KeyFile = "", ""
	return cfg, nil
}

// pki creates the cluster's CA and every certificate and kubeconfig its
// components use.
func (c *Cluster) pki(port int) (map[string]string, error) {
	pki := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	ca, err := newAuthority(c.Name + "-ca")
	if err != nil {
		return nil, err
	}
	c.ca = ca
	c.CAFile = filepath.Join(pki, "ca.crt")
	if err := os.WriteFile(c.CAFile, ca.certPEM(), 0o644); err != nil {
		return nil, err
	}
	loop := []net.IP{net.ParseIP("127.0.0.1")}
	files := map[string]string{}
	serving, err := ca.issue("kube-apiserver", nil, append(loop, net.ParseIP("10.96.0.1")),
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return nil, err
	}
	if files["serving.crt"], files["serving.key"], err = writePair(pki, "apiserver", serving); err != nil {
		return nil, err
	}
	kubeletClient, err := ca.issue(KubeletClientUser, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if c.KubeletClientCert, c.KubeletClientKey, err = writePair(pki, "apiserver-kubelet-client", kubeletClient); err != nil {
		return nil, err
	}
	kubeletServing, err := ca.issue("kubelet", nil, loop, []string{"localhost"})
	if err != nil {
		return nil, err
	}
	if c.KubeletServingCert, c.KubeletServingKey, err = writePair(pki, "kubelet-serving", kubeletServing); err != nil {
		return nil, err
	}
	if files["sa.key"], files["sa.pub"], err = signingKey(pki); err != nil {
		return nil, err
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	users := []struct {
		file, user string
		groups     []string
	}{
		{"admin", "atoll-testenv-admin", []string{"system:masters"}},
		{"scheduler", "system:kube-scheduler", nil},
		{"controller-manager", "system:kube-controller-manager", nil},
		// kwok plays every kubelet of the cluster, which the Node authorizer
		// would confine to one node each; it runs as an admin instead.
		{"kwok", "kwok", []string{"system:masters"}},
	}
	for _, u := range users {
		kp, err := ca.issue(u.user, u.groups, nil, nil)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(c.dir, u.file+".kubeconfig")
		if u.file == "admin" {
			path = c.Kubeconfig
		}
		if err := writeKubeconfig(path, c.Name, c.Server, ca.certPEM(), kp); err != nil {
			return nil, err
		}
		files[u.file+".kubeconfig"] = path
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.Config = cfg
	return files, nil
}

func writeKubeconfig(path, name, server string, ca []byte, kp keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.Cert, ClientKeyData: kp.Key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

func (c *Cluster) logPath(dir, component string) string {
	return filepath.Join(dir, "logs", c.Name+"-"+component+".log")
}

// apiserverProcess returns the kube-apiserver of the cluster: real client
// certificate authentication, RBAC, no anonymous access, its own etcd prefix.
func (c *Cluster) apiserverProcess(bin Binaries, envDir, etcdURL string, port int, files map[string]string, profiling bool) *Process {
	return &Process{
		Name: c.Name + "/kube-apiserver",
		Path: bin.APIServer,
		Log:  c.logPath(envDir, "kube-apiserver"),
		Args: []string{
			"--etcd-servers=" + etcdURL,
			"--etcd-prefix=/" + c.Name,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// The endpoint reconciler refuses a loopback address; nothing in the
			// bed reaches the apiserver through the kubernetes Service.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + filepath.Join(c.dir, "pki"),
			"--tls-cert-file=" + files["serving.crt"],
			"--tls-private-key-file=" + files["serving.key"],
			"--client-ca-file=" + c.CAFile,
			"--anonymous-auth=false",
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + files["sa.pub"],
			"--service-account-signing-key-file=" + files["sa.key"],
			"--service-cluster-ip-range=10.96.0.0/16",
			"--allow-privileged=true",
			"--kubelet-client-certificate=" + c.KubeletClientCert,
			"--kubelet-client-key=" + c.KubeletClientKey,
			"--kubelet-certificate-authority=" + c.CAFile,
			"--kubelet-preferred-address-types=InternalIP,Hostname",
			"--enable-priority-and-fairness=false",
			"--profiling=" + strconv.FormatBool(profiling),
			"--max-requests-inflight=1000",
			"--max-mutating-requests-inflight=500",
		},
	}
}

func (c *Cluster) schedulerProcess(bin Binaries, envDir string, files map[string]string) (*Process, error) {
	config := filepath.Join(c.dir, "scheduler.yaml")
	data := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
`, files["scheduler.kubeconfig"])
	if err := os.WriteFile(config, []byte(data), 0o644); err != nil {
		return nil, err
	}
	return &Process{
		Name: c.Name + "/kube-scheduler",
		Path: bin.Scheduler,
		Log:  c.logPath(envDir, "kube-scheduler"),
		Args: []string{"--config=" + config, "--secure-port=0"},
	}, nil
}

func (c *Cluster) controllerManagerProcess(bin Binaries, envDir string, files map[string]string) *Process {
	return &Process{
		Name: c.Name + "/kube-controller-manager",
		Path: bin.ControllerManager,
		Log:  c.logPath(envDir, "kube-controller-manager"),
		Args: []string{
			"--kubeconfig=" + files["controller-manager.kubeconfig"],
			"--secure-port=0",
			"--leader-elect=false",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + files["sa.key"],
			"--root-ca-file=" + c.CAFile,
			"--kube-api-qps=200",
			"--kube-api-burst=400",
			"--concurrent-gc-syncs=5",
		},
	}
}

func (c *Cluster) kwokProcess(bin Binaries, envDir string, port int, files map[string]string) (*Process, error) {
	args := []string{
		"--kubeconfig=" + files["kwok.kubeconfig"],
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-ip=127.0.0.1",
		"--node-port=" + strconv.Itoa(port),
		"--server-address=127.0.0.1:" + strconv.Itoa(port),
		"--tls-cert-file=" + c.KubeletServingCert,
		"--tls-private-key-file=" + c.KubeletServingKey,
		"--cidr=10.244.0.0/16",
		// kwok keeps a Lease per node, which is how the node lifecycle
		// controller knows a node is alive (without it nodes go NotReady).
		"--node-lease-duration-seconds=40",
	}
	stages, err := bedStages(c.dir)
	if err != nil {
		return nil, err
	}
	debugging, err := c.debuggingConfig()
	if err != nil {
		return nil, err
	}
	for _, s := range append(append(bin.KwokStages, stages...), debugging) {
		args = append(args, "--config="+s)
	}
	return &Process{
		Name: c.Name + "/kwok",
		Path: bin.Kwok,
		Log:  c.logPath(envDir, "kwok"),
		Args: args,
	}, nil
}

const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// waitReady polls the apiserver's /readyz until it answers ok.
func (c *Cluster) waitReady(ctx context.Context) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if !c.apiserver.Running() {
			return false, errors.New("kube-apiserver exited")
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		return err == nil && string(body) == "ok", nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s apiserver (log %s): %w", c.Name, c.apiserver.Log, err)
	}
	return nil
}

// NodeShape is the capacity of each kwok node in a remote.
type NodeShape struct {
	CPU    string // default "32"
	Memory string // default "256Gi"
	Pods   int    // default 110
}

// createNodes registers n fake nodes that kwok then plays: it makes them
// Ready and keeps their lease.
func (c *Cluster) createNodes(ctx context.Context, n int, shape NodeShape) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(shape.CPU),
		corev1.ResourceMemory: resource.MustParse(shape.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(shape.Pods), resource.DecimalSI),
	}
	for i := range n {
		name := fmt.Sprintf("%s-node-%d", c.Name, i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{kwokNodeAnnotation: "fake"},
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
			},
			Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl},
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cs.CoreV1().Nodes().Create(rctx, node, metav1.CreateOptions{})
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s in %s: %w", name, c.Name, err)
		}
	}
	return nil
}

// bindKubeletClient lets the apiserver's kubelet client user call the
// kubelet API (system:kubelet-api-admin), as kubeadm sets it up.
func (c *Cluster) bindKubeletClient(ctx context.Context) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "atoll-testenv:kubelet-api-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: KubeletClientUser}},
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(rctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("bind %s in %s: %w", KubeletClientUser, c.Name, err)
	}
	return nil
}

// waitSettled waits until the cluster can run workloads: the default service
// account exists (the controller-manager made it) and, in a remote, wantNodes
// nodes are Ready.
func (c *Cluster) waitSettled(ctx context.Context, wantNodes int) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.others {
			if !p.Running() {
				return false, fmt.Errorf("%s exited (log %s)", p.Name, p.Log)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(rctx, "default", metav1.GetOptions{}); err != nil {
			last = "service account default/default: " + err.Error()
			return false, nil
		}
		if wantNodes == 0 {
			return true, nil
		}
		nodes, err := cs.CoreV1().Nodes().List(rctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			if nodeReady(&n) {
				ready++
			}
		}
		last = fmt.Sprintf("%d/%d kwok nodes Ready", ready, wantNodes)
		return ready >= wantNodes, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s to settle (%s): %w", c.Name, last, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// StopAPIServer stops the cluster's kube-apiserver, making the cluster
// unreachable while everything else keeps its state.
func (c *Cluster) StopAPIServer(ctx context.Context) error {
	return c.apiserver.stop(ctx, 10*time.Second)
}

// StartAPIServer starts the kube-apiserver again on the same address and
// waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if c.apiserver.Running() {
		return nil
	}
	if err := c.apiserver.start(false); err != nil {
		return err
	}
	return c.waitReady(ctx)
}
