package reconcile

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fetchMarker is in everything the test server answers: it must never
// show in an error.
const fetchMarker = "fetched-from-the-network"

// TestKustomizeNeverFetches writes kustomizations that name a URL in every
// way kustomize would follow, spelled as an attacker would (keys in other
// cases, !!binary, merge keys, in transformer and generator configs that
// are not kustomizations). Each render must fail as remote, and the
// server must never be asked.
func TestKustomizeNeverFetches(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: " + fetchMarker + "}\nspec: {credentials: {secretRef: {name: x}}}\n"))
	}))
	defer srv.Close()
	url := srv.URL + "/cluster.yaml"
	b64 := base64.StdEncoding.EncodeToString([]byte(url))
	patchTransformer := "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + url + "\ntarget: {kind: Cluster}\n"

	tests := []struct {
		name  string
		files map[string]string
	}{
		{"capitalised key", map[string]string{"kustomization.yaml": "Resources:\n  - " + url + "\n"}},
		{"upper-case key", map[string]string{"kustomization.yaml": "RESOURCES: [" + url + "]\n"}},
		{"!!binary value", map[string]string{"kustomization.yaml": "resources:\n  - !!binary " + b64 + "\n"}},
		{"merge key", map[string]string{"kustomization.yaml": "<<: {resources: [" + url + "]}\n"}},
		{"patch Path", map[string]string{"kustomization.yaml": "resources: [a.yaml]\npatches:\n  - Path: " + url + "\n    target: {kind: Cluster}\n", "a.yaml": clusterA}},
		{"generator Files", map[string]string{"kustomization.yaml": "configMapGenerator:\n  - name: x\n    Files: [" + url + "]\n"}},
		{"openapi path", map[string]string{"kustomization.yaml": "resources: [a.yaml]\nopenapi: {path: " + url + "}\n", "a.yaml": clusterA}},
		{"replacement path", map[string]string{"kustomization.yaml": "resources: [a.yaml]\nreplacements:\n  - path: " + url + "\n", "a.yaml": clusterA}},
		{"git over http", map[string]string{"kustomization.yaml": "Resources: [git::" + srv.URL + "/fleet.git]\n"}},
		{"transformer config file", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers: [t.yaml]\n", "a.yaml": clusterA, "t.yaml": patchTransformer}},
		{"inline transformer config", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers:\n  - |\n" + indent(patchTransformer, "    "), "a.yaml": clusterA}},
		{"generator config file", map[string]string{"kustomization.yaml": "generators: [g.yaml]\n", "g.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nfiles: [" + url + "]\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			r, err := Render(context.Background(), dir, ".")
			if got := hits.Load() - before; got > 0 {
				t.Errorf("the server was asked %d times", got)
			}
			if err == nil {
				t.Fatalf("Render succeeded with %d documents, want it refused", r.Len())
			}
			if !errors.Is(err, ErrRemoteRefused) {
				t.Errorf("error %q is not ErrRemoteRefused", err)
			}
			if strings.Contains(err.Error(), fetchMarker) {
				t.Errorf("error %q shows fetched content", err)
			}
		})
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// TestRenderBoundedThenGood renders a revision that never finishes in
// time, then a good one in the same process: the bad build is stopped
// (its time and memory bounded) and cannot hold up the good one.
func TestRenderBoundedThenGood(t *testing.T) {
	// A few hundred bytes of YAML aliases that expand to 9^9 strings.
	bomb, err := os.ReadFile("testdata/aliasbomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	writeFiles(t, bad, map[string]string{"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": string(bomb)})
	good := t.TempDir()
	writeFiles(t, good, map[string]string{"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": clusterA})

	for _, lim := range []Limits{
		{Timeout: 2 * time.Second},                        // time runs out first
		{Timeout: time.Minute, MaxMemoryBytes: 256 << 20}, // memory runs out first
	} {
		start := time.Now()
		_, err := Render(context.Background(), bad, ".", WithLimits(lim))
		if !errors.Is(err, ErrLimitExceeded) {
			t.Fatalf("limits %+v: bad revision: error %v, want ErrLimitExceeded", lim, err)
		}
		t.Logf("limits %+v: bad revision refused after %s: %v", lim, time.Since(start).Round(time.Millisecond), err)

		r, err := Render(context.Background(), good, ".", WithTimeout(10*time.Second))
		if err != nil {
			t.Fatalf("good revision after a bad one: %v", err)
		}
		if r.Len() != 1 {
			t.Fatalf("good revision: %d documents, want 1", r.Len())
		}
	}
	// The good revision renders while a bad one is still running.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Render(ctx, bad, ".", WithTimeout(time.Minute))
		done <- err
	}()
	if _, err := Render(context.Background(), good, ".", WithTimeout(10*time.Second)); err != nil {
		t.Fatalf("good revision while a bad one runs: %v", err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("bad revision rendered")
	}
}
