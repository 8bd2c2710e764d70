package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// The example fleet is the demo's and the e2e tests' fixture: both
// overlays must render and validate, and declare the test bed's remotes.
func TestExampleFleet(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		mode      Mode
		wantCreds []string
		wantErr   bool
	}{
		{name: "dev overlay in watch mode", path: "examples/fleet/overlays/dev", mode: ModeWatch,
			wantCreds: []string{"path ../../../remote-1.kubeconfig", "path ../../../remote-2.kubeconfig"}},
		{name: "prod overlay in git mode", path: "examples/fleet/overlays/prod", mode: ModeGit,
			wantCreds: []string{"secret remote-1-kubeconfig key kubeconfig", "secret remote-2-kubeconfig key kubeconfig"}},
		{name: "base in git mode", path: "examples/fleet/base", mode: ModeGit,
			wantCreds: []string{"secret remote-1-kubeconfig key kubeconfig", "secret remote-2-kubeconfig key kubeconfig"}},
		{name: "dev overlay is refused in git mode (kubeconfig paths)", path: "examples/fleet/overlays/dev", mode: ModeGit, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, nodes, err := Load(context.Background(), "..", tt.path, WithMode(tt.mode))
			if tt.wantErr {
				if err == nil {
					t.Fatal("Load succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Policies) != 2 {
				t.Errorf("%d placement policies, want 2", len(f.Policies))
			}
			var names, creds []string
			for _, n := range nodes {
				names = append(names, n.Name)
				creds = append(creds, n.Credentials.String())
			}
			if !slices.Equal(names, []string{"remote-1", "remote-2"}) {
				t.Errorf("nodes %v, want remote-1 and remote-2", names)
			}
			if !slices.Equal(creds, tt.wantCreds) {
				t.Errorf("credentials %q, want %q", creds, tt.wantCreds)
			}
			if !slices.Equal(nodes[0].Policies, []string{"delegate", "gpu"}) || len(nodes[0].TolerateIn) != 2 {
				t.Errorf("remote-1: policies %v, tolerateIn %v; want the delegate and gpu policies", nodes[0].Policies, nodes[0].TolerateIn)
			}
			if !slices.Equal(nodes[1].Policies, []string{"delegate"}) || !slices.Contains(nodes[1].Taints, ProviderTaint) {
				t.Errorf("remote-2: policies %v, taints %v; want the delegate policy and the provider taint", nodes[1].Policies, nodes[1].Taints)
			}
		})
	}
}

// The example workloads are ordinary Kubernetes objects, with requests.
func TestExampleWorkloads(t *testing.T) {
	tests := []struct {
		file, kind string
	}{
		{"deployment.yaml", "Deployment"},
		{"job.yaml", "Job"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "examples", "workloads", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var obj struct {
				Kind string `yaml:"kind"`
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Resources struct {
									Requests map[string]string `yaml:"requests"`
								} `yaml:"resources"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if err := yaml.Unmarshal(b, &obj); err != nil {
				t.Fatal(err)
			}
			if obj.Kind != tt.kind {
				t.Errorf("kind %q, want %q", obj.Kind, tt.kind)
			}
			cs := obj.Spec.Template.Spec.Containers
			if len(cs) == 0 || cs[0].Resources.Requests["cpu"] == "" || cs[0].Resources.Requests["memory"] == "" {
				t.Errorf("containers %+v: want cpu and memory requests", cs)
			}
		})
	}
}

// Load may run concurrently (kustomize keeps global state; see kustomizeMu).
func TestLoadConcurrently(t *testing.T) {
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			path, mode := "examples/fleet/overlays/prod", ModeGit
			if i%2 == 0 {
				path, mode = "examples/fleet/overlays/dev", ModeWatch
			}
			_, nodes, err := Load(context.Background(), "..", path, WithMode(mode))
			if err == nil && len(nodes) != 2 {
				err = fmt.Errorf("%s: %d nodes, want 2", path, len(nodes))
			}
			if err == nil {
				ComputePlan(nodes, nil).Summary()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
