package vnode

import (
	"errors"
	"testing"

	"k8s.io/client-go/rest"
)

func TestManagerBookkeeping(t *testing.T) {
	m, err := NewManager(ManagerConfig{Master: &rest.Config{Host: "https://master.invalid"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(ManagerConfig{}); err == nil {
		t.Fatal("NewManager without a master config must fail")
	}
	spec := NodeSpec{Name: "cern-001", Remote: &rest.Config{Host: "https://remote.invalid"}}
	if err := m.Add(NodeSpec{Name: "Bad_Name", Remote: spec.Remote}); err == nil {
		t.Fatal("Add must validate the spec")
	}
	if err := m.Add(spec); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(spec); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("second Add = %v, want ErrNodeExists", err)
	}
	if err := m.Update(NodeSpec{Name: "other", Remote: spec.Remote}); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("Update of an unknown node = %v, want ErrNodeNotFound", err)
	}
	spec.Labels = map[string]string{"tier": "gold"}
	if err := m.Update(spec); err != nil {
		t.Fatal(err)
	}
	spec.Labels["tier"] = "changed after Update"
	nodes := m.Nodes()
	if len(nodes) != 1 || nodes[0].Labels["tier"] != "gold" {
		t.Fatalf("Nodes() = %+v; want the updated spec, not aliased to the caller's map", nodes)
	}
	h := m.Health()
	if len(h) != 1 || h[0].Name != "cern-001" || h[0].Ready || h[0].Reason != "NotStarted" {
		t.Fatalf("Health() before Run = %+v", h)
	}
	if _, ok := m.Node("cern-001"); ok {
		t.Fatal("Node() must not return a node that is not running")
	}
}

func TestSameRemote(t *testing.T) {
	base := &rest.Config{Host: "https://a", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("ca"), CertData: []byte("c"), KeyData: []byte("k")}}
	withDial := rest.CopyConfig(base)
	withDial.WrapTransport = nil
	withDial.UserAgent = "something else"
	otherHost := rest.CopyConfig(base)
	otherHost.Host = "https://b"
	otherCert := rest.CopyConfig(base)
	otherCert.CertData = []byte("c2")
	otherToken := rest.CopyConfig(base)
	otherToken.BearerToken = "t"
	tests := []struct {
		name string
		a, b *rest.Config
		want bool
	}{
		{name: "copy", a: base, b: rest.CopyConfig(base), want: true},
		{name: "unrelated fields", a: base, b: withDial, want: true},
		{name: "host", a: base, b: otherHost, want: false},
		{name: "client cert", a: base, b: otherCert, want: false},
		{name: "token", a: base, b: otherToken, want: false},
		{name: "nil", a: base, b: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameRemote(tt.a, tt.b); got != tt.want {
				t.Fatalf("sameRemote = %v, want %v", got, tt.want)
			}
		})
	}
}
