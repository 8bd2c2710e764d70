package gitsource

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"golang.org/x/net/proxy"
)

// go-git v5 does not pass the call's context to the SSH dial and handshake,
// so a server that accepts the TCP connection and then stalls would hang a
// Fetch. SSH connections are therefore made through this "proxy", which
// dials directly and puts an absolute deadline (the call's Timeout) on the
// connection, bounding handshake and transfer alike.
const deadlineScheme = "atoll-deadline"

func init() {
	proxy.RegisterDialerType(deadlineScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		d, err := time.ParseDuration(u.Query().Get("timeout"))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("parse %s timeout %q: %v", deadlineScheme, u.Query().Get("timeout"), err)
		}
		return deadlineDialer{timeout: d}, nil
	})
}

func deadlineProxyURL(timeout time.Duration) string {
	return deadlineScheme + "://direct/?timeout=" + url.QueryEscape(timeout.String())
}

type deadlineDialer struct{ timeout time.Duration }

var _ proxy.ContextDialer = deadlineDialer{}

func (d deadlineDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	nd := net.Dialer{Deadline: deadline}
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
