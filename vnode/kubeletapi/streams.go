package kubeletapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// The functions below proxy one kubelet call each to the pod's subresource
// on the remote API server with client-go: the remote apiserver then asks
// its own kubelet. Nothing runs in the remote cluster but what the user
// asked for.

func (s *Server) containerLogs(ctx context.Context, namespace, pod, container string, o api.ContainerLogOpts) (io.ReadCloser, error) {
	t, err := s.locate(ctx, namespace, pod)
	if err != nil {
		return nil, err
	}
	opts := &corev1.PodLogOptions{
		Container:  container,
		Follow:     o.Follow,
		Previous:   o.Previous,
		Timestamps: o.Timestamps,
	}
	if o.Tail > 0 {
		opts.TailLines = int64Ptr(o.Tail)
	}
	if o.LimitBytes > 0 {
		opts.LimitBytes = int64Ptr(o.LimitBytes)
	}
	if o.SinceSeconds > 0 {
		opts.SinceSeconds = int64Ptr(o.SinceSeconds)
	} else if !o.SinceTime.IsZero() {
		opts.SinceTime = &metav1.Time{Time: o.SinceTime}
	}
	rc, err := t.Client.CoreV1().Pods(t.Namespace).GetLogs(t.Name, opts).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("logs of %s/%s in the remote cluster: %w", t.Namespace, t.Name, err)
	}
	return rc, nil
}

func int64Ptr(n int) *int64 { v := int64(n); return &v }

func (s *Server) exec(ctx context.Context, namespace, pod, container string, cmd []string, attach api.AttachIO) error {
	t, err := s.locate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	req := restClient(t).Post().Resource("pods").Namespace(t.Namespace).Name(t.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdin:     attach.Stdin() != nil,
			Stdout:    attach.Stdout() != nil,
			Stderr:    attach.Stderr() != nil,
			TTY:       attach.TTY(),
		}, scheme.ParameterCodec)
	return stream(ctx, t.Config, req.URL(), attach)
}

func (s *Server) attach(ctx context.Context, namespace, pod, container string, attach api.AttachIO) error {
	t, err := s.locate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	req := restClient(t).Post().Resource("pods").Namespace(t.Namespace).Name(t.Name).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{
			Container: container,
			Stdin:     attach.Stdin() != nil,
			Stdout:    attach.Stdout() != nil,
			Stderr:    attach.Stderr() != nil,
			TTY:       attach.TTY(),
		}, scheme.ParameterCodec)
	return stream(ctx, t.Config, req.URL(), attach)
}

func restClient(t Target) rest.Interface { return t.Client.CoreV1().RESTClient() }

// stream runs an exec or attach session against the remote apiserver:
// WebSocket first, SPDY when the server does not upgrade to WebSocket.
func stream(ctx context.Context, config *rest.Config, u *url.URL, attach api.AttachIO) error {
	ws, err := remotecommand.NewWebSocketExecutor(config, http.MethodGet, u.String())
	if err != nil {
		return fmt.Errorf("websocket executor: %w", err)
	}
	sp, err := remotecommand.NewSPDYExecutor(config, http.MethodPost, u)
	if err != nil {
		return fmt.Errorf("spdy executor: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Tty: attach.TTY()}
	// Typed nils must not reach client-go, which checks for nil interfaces.
	if r := attach.Stdin(); r != nil {
		opts.Stdin = r
	}
	if w := attach.Stdout(); w != nil {
		opts.Stdout = w
	}
	if w := attach.Stderr(); w != nil {
		opts.Stderr = w
	}
	if attach.TTY() {
		opts.TerminalSizeQueue = sizeQueue{ctx: ctx, ch: attach.Resize()}
	}
	return exec.StreamWithContext(ctx, opts)
}

// sizeQueue hands terminal resizes from the master's stream to client-go.
type sizeQueue struct {
	ctx context.Context
	ch  <-chan api.TermSize
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case <-q.ctx.Done():
		return nil
	case s, ok := <-q.ch:
		if !ok {
			return nil
		}
		return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
	}
}

// portForward connects one forwarded connection to port of the remote pod:
// a SPDY connection to the pod's portforward subresource carrying one error
// and one data stream, as kubectl port-forward opens them.
func (s *Server) portForward(ctx context.Context, namespace, pod string, port int32, conn io.ReadWriteCloser) error {
	defer conn.Close()
	t, err := s.locate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	u := restClient(t).Post().Resource("pods").Namespace(t.Namespace).Name(t.Name).SubResource("portforward").URL()
	// SPDY tunnelled over WebSocket first, as kubectl does; plain SPDY
	// when the remote apiserver does not upgrade to WebSocket.
	tunnel, err := portforward.NewSPDYOverWebsocketDialer(u, t.Config)
	if err != nil {
		return err
	}
	transport, upgrader, err := spdy.RoundTripperFor(t.Config)
	if err != nil {
		return err
	}
	dialer := portforward.NewFallbackDialer(tunnel,
		spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u),
		func(err error) bool { return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) })
	remote, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return fmt.Errorf("port-forward to %s/%s in the remote cluster: %w", t.Namespace, t.Name, err)
	}
	defer remote.Close()

	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := remote.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("create error stream: %w", err)
	}
	// Only the remote writes on the error stream.
	errStream.Close()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := remote.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("create data stream: %w", err)
	}

	remoteErr := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errStream)
		switch {
		case err != nil:
			remoteErr <- fmt.Errorf("read error stream: %w", err)
		case len(msg) > 0:
			remoteErr <- fmt.Errorf("remote port-forward %d: %s", port, msg)
		default:
			remoteErr <- nil
		}
	}()
	go func() {
		// An error here shows on the other copy, which then ends too.
		_, _ = io.Copy(data, conn)
		// Half-close: the pod sees EOF and may still answer.
		data.Close()
	}()
	_, copyErr := io.Copy(conn, data)
	// The remote closes its error stream as it ends the forward; wait briefly
	// for what it says there, which explains a failed forward best.
	select {
	case err := <-remoteErr:
		if err != nil {
			return err
		}
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	return copyErr
}
