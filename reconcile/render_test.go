package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const kustBase = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - a.yaml
  - gpu.yaml
`

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		links   map[string]string // link name -> target (relative to the temp dir, or absolute)
		path    string            // fleet path inside repo/
		limits  Limits
		wantN   int    // documents
		wantK   bool   // kustomized
		wantIs  error  // errors.Is
		wantErr string // substring of the error
	}{
		{
			name: "plain: recursive, multi-document, hidden and non-YAML skipped",
			files: map[string]string{
				"repo/fleet/a.yaml":          clusterA + "---\n# empty\n---\n",
				"repo/fleet/sub/gpu.yml":     policyGPU + "---\n" + strings.Replace(clusterA, "name: a", "name: b", 1),
				"repo/fleet/.hidden/x.yaml":  "not: [valid",
				"repo/fleet/README.md":       "# hi",
				"repo/fleet/sub/notes.txt":   "x: [",
				"repo/fleet/.dotfile.yaml":   "x: [",
				"repo/elsewhere/other.yaml":  "x: [",
				"repo/fleet/sub/deeper/.git": "",
			},
			path:  "fleet",
			wantN: 3,
		},
		{
			name:  "plain: symbolic link inside the root is followed",
			files: map[string]string{"repo/shared/a.yaml": clusterA, "repo/fleet/keep.txt": ""},
			links: map[string]string{"repo/fleet/a.yaml": "../shared/a.yaml", "repo/fleet/dir": "../shared", "repo/fleet/loop": "."},
			path:  "fleet",
			wantN: 1, // one file, reached through two links, read once
		},
		{
			name:   "plain: symbolic link leaving the root is refused",
			files:  map[string]string{"outside/a.yaml": clusterA, "repo/fleet/b.yaml": clusterA},
			links:  map[string]string{"repo/fleet/a.yaml": "../../outside/a.yaml"},
			path:   "fleet",
			wantIs: ErrOutsideRoot,
		},
		{
			name:   "fleet path leaving the root is refused",
			files:  map[string]string{"outside/a.yaml": clusterA, "repo/x.yaml": clusterA},
			path:   "../outside",
			wantIs: ErrOutsideRoot,
		},
		{
			name:    "fleet path must be a directory",
			files:   map[string]string{"repo/x.yaml": clusterA},
			path:    "x.yaml",
			wantErr: "is not a directory",
		},
		{
			name:  "kustomize: base and overlay",
			files: map[string]string{"repo/base/kustomization.yaml": kustBase, "repo/base/a.yaml": clusterA, "repo/base/gpu.yaml": policyGPU, "repo/overlays/dev/kustomization.yml": "resources: [../../base]\n"},
			path:  "overlays/dev",
			wantN: 2,
			wantK: true,
		},
		{
			name:  "kustomize: file named Kustomization",
			files: map[string]string{"repo/base/Kustomization": kustBase, "repo/base/a.yaml": clusterA, "repo/base/gpu.yaml": policyGPU},
			path:  "base",
			wantN: 2,
			wantK: true,
		},
		{
			name:    "kustomize: remote URL refused",
			files:   map[string]string{"repo/kustomization.yaml": "resources:\n  - a.yaml\n  - https://example.com/cluster.yaml\n", "repo/a.yaml": clusterA},
			wantIs:  ErrRemoteRefused,
			wantErr: `kustomization.yaml:3: resources[1]: "https://example.com/cluster.yaml": remote resources are refused`,
		},
		{
			name:    "kustomize: remote git base refused",
			files:   map[string]string{"repo/kustomization.yaml": "resources:\n  - github.com/example/fleet//base?ref=v1\n"},
			wantIs:  ErrRemoteRefused,
			wantErr: `kustomization.yaml:2: resources[0]: "github.com/example/fleet//base?ref=v1": remote resources are refused`,
		},
		{
			name:    "kustomize: missing local resource is not fetched",
			files:   map[string]string{"repo/kustomization.yaml": "resources:\n  - example.com/org/repo\n"},
			wantIs:  ErrRemoteRefused,
			wantErr: `"example.com/org/repo": not found in the repository`,
		},
		{
			name:    "kustomize: remote patch file refused",
			files:   map[string]string{"repo/kustomization.yaml": "resources: [a.yaml]\npatches:\n  - path: http://example.com/p.yaml\n", "repo/a.yaml": clusterA},
			wantIs:  ErrRemoteRefused,
			wantErr: `kustomization.yaml:3: patches[0].path: "http://example.com/p.yaml"`,
		},
		{
			name:   "kustomize: base outside the root refused",
			files:  map[string]string{"repo/fleet/kustomization.yaml": "resources: [../../outside]\n", "outside/kustomization.yaml": "resources: [a.yaml]\n", "outside/a.yaml": clusterA},
			path:   "fleet",
			wantIs: ErrOutsideRoot,
		},
		{
			name:   "kustomize: symbolic link leaving the root refused",
			files:  map[string]string{"repo/kustomization.yaml": "resources: [a.yaml]\n", "outside/a.yaml": clusterA},
			links:  map[string]string{"repo/a.yaml": "../outside/a.yaml"},
			wantIs: ErrOutsideRoot,
		},
		{
			name:    "kustomize: helm refused",
			files:   map[string]string{"repo/kustomization.yaml": "helmCharts:\n  - name: x\n"},
			wantErr: "kustomization.yaml:1: helmCharts: helm charts are refused (plugins are off)",
		},
		{
			name: "kustomize: plugins are off",
			files: map[string]string{
				"repo/kustomization.yaml": "resources: [a.yaml]\ngenerators: [gen.yaml]\n", "repo/a.yaml": clusterA,
				"repo/gen.yaml": "apiVersion: example.com/v1\nkind: Generator\nmetadata: {name: g}\n",
			},
			wantErr: "kustomize build .",
		},
		{
			name:    "kustomize: YAML error in a resource names file and line",
			files:   map[string]string{"repo/kustomization.yaml": "resources: [a.yaml]\n", "repo/a.yaml": "apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: [a}\n"},
			wantIs:  ErrInvalid,
			wantErr: "a.yaml:3: invalid YAML",
		},
		{
			name:    "limit: files",
			files:   map[string]string{"repo/a.yaml": clusterA, "repo/b.yaml": clusterA},
			limits:  Limits{MaxFiles: 1},
			wantIs:  ErrLimitExceeded,
			wantErr: "read b.yaml: more than 1 files",
		},
		{
			name:    "limit: bytes in all",
			files:   map[string]string{"repo/a.yaml": clusterA, "repo/b.yaml": clusterA},
			limits:  Limits{MaxBytes: int64(len(clusterA)) + 10},
			wantIs:  ErrLimitExceeded,
			wantErr: "bytes in all",
		},
		{
			name:    "limit: bytes per file, kustomize too",
			files:   map[string]string{"repo/kustomization.yaml": "resources: [a.yaml]\n", "repo/a.yaml": clusterA},
			limits:  Limits{MaxFileBytes: 100},
			wantIs:  ErrLimitExceeded,
			wantErr: "bytes, more than the limit of 100 per file",
		},
		{
			name:    "limit: time",
			files:   map[string]string{"repo/a.yaml": clusterA},
			limits:  Limits{Timeout: time.Nanosecond},
			wantIs:  ErrLimitExceeded,
			wantErr: "took longer than 1ns",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			if err := os.MkdirAll(filepath.Join(dir, "repo"), 0o755); err != nil {
				t.Fatal(err)
			}
			for link, target := range tt.links {
				if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
					t.Fatal(err)
				}
			}
			path := tt.path
			if path == "" {
				path = "."
			}
			r, err := Render(context.Background(), filepath.Join(dir, "repo"), path, WithLimits(tt.limits))
			if tt.wantIs != nil || tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Render succeeded with %d documents, want error", r.Len())
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %q is not %v", err, tt.wantIs)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != tt.wantN || r.Kustomized != tt.wantK {
				t.Errorf("got %d documents (kustomized %v), want %d (%v)", r.Len(), r.Kustomized, tt.wantN, tt.wantK)
			}
		})
	}
}

// With kustomize, errors name the source file and line of the object
// through kustomize's origin annotation, and flag values kustomize set.
func TestKustomizeErrorLines(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/kustomization.yaml": "resources: [clusters/a.yaml]\n",
		"base/clusters/a.yaml": `# cluster a
apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: a
spec:
  credentials:
    secretRef: {name: a-kubeconfig}
  node:
    taints: [{key: gpu, effect: Nope}]
    capacity: {cpu: "4"}
`,
		"overlays/dev/kustomization.yaml": `resources: [../../base]
namePrefix: dev-
patches:
  - target: {kind: Cluster}
    patch: |-
      - op: replace
        path: /spec/node/capacity/cpu
        value: "-2"
      - op: add
        path: /spec/bogus
        value: 1
`,
	})
	_, _, err := Load(context.Background(), dir, "overlays/dev")
	want := []string{
		`base/clusters/a.yaml:10: spec.node.taints[0].effect: unsupported value "Nope": want NoSchedule, PreferNoSchedule or NoExecute`,
		`base/clusters/a.yaml:11: spec.node.capacity.cpu: must be positive, got -2 (value set by kustomize, built from overlays/dev/kustomization.yaml)`,
		`base/clusters/a.yaml:6: spec.bogus: unknown field (value set by kustomize, built from overlays/dev/kustomization.yaml)`,
	}
	got := errorLines(t, err)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", join(got), join(want))
	}
}
