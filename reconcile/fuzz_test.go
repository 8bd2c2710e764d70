package reconcile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// FuzzDecode feeds a fleet file through decode, validation, the merge
// into nodes and the plan: none may panic, and every problem must come
// back as a FieldError naming the file.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(clusterA))
	f.Add([]byte(clusterA + "---\n" + policyGPU))
	f.Add([]byte("apiVersion: atoll.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c, labels: &l {a: b}}\nspec: {credentials: {secretRef: {name: s}}, node: {labels: *l, taints: [{key: k, effect: NoExecute}], capacity: {cpu: \"-1\"}}}\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nkind: Cluster\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := parseYAML("f.yaml", data)
		if err != nil {
			return
		}
		r := &Rendered{}
		for _, n := range nodes {
			r.docs = append(r.docs, &document{file: "f.yaml", line: n.Line, node: n, src: n})
		}
		fleet, err := Decode(r, ModeGit)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Decode error %v is not a non-empty ErrorList", err)
			}
			for _, e := range list {
				if e.File != "f.yaml" {
					t.Fatalf("problem %q names file %q", e, e.File)
				}
			}
			return
		}
		desired, err := DesiredNodes(fleet)
		if err != nil {
			return
		}
		p := ComputePlan(desired, nil)
		if add, _, _ := p.Counts(); add != len(desired) {
			t.Fatalf("plan from nothing adds %d of %d nodes", add, len(desired))
		}
		_ = p.Summary()
	})
}

// FuzzAllowedRemovals parses commit messages for the breaker's trailer.
func FuzzAllowedRemovals(f *testing.F) {
	f.Add("Remove\n\nAtoll-Allow-Removal: 3")
	f.Add("Remove\r\n\r\natoll-allow-removal:  12 \r\n")
	f.Add("Atoll-Allow-Removal: 5")
	f.Add("x\n\nAtoll-Allow-Removal: -1\nAtoll-Allow-Removal: 99999999999999999999")
	f.Fuzz(func(t *testing.T, msg string) {
		n, ok := AllowedRemovals(msg)
		if ok && n < 0 {
			t.Fatalf("AllowedRemovals(%q) = %d", msg, n)
		}
		if !ok && n != 0 {
			t.Fatalf("AllowedRemovals(%q) = %d without a trailer", msg, n)
		}
		if ok && !strings.Contains(strings.ToLower(msg), strings.ToLower(AllowRemovalTrailer)) {
			t.Fatalf("AllowedRemovals(%q) found a trailer that is not there", msg)
		}
	})
}

// FuzzKustomization reads a kustomization through the check Render puts
// before kustomize. Whatever the input, what it hands kustomize must name
// nothing remote: decoded as kustomize decodes it, every reference is
// local.
func FuzzKustomization(f *testing.F) {
	f.Add([]byte("resources: [a.yaml]\n"))
	f.Add([]byte("Resources:\n  - https://example.com/x.yaml\n"))
	f.Add([]byte("resources:\n  - !!binary aHR0cHM6Ly9leGFtcGxlLmNvbS94LnlhbWw=\n"))
	f.Add([]byte("<<: {resources: [a.yaml]}\npatches:\n  - Path: a.yaml\n"))
	f.Add([]byte("configMapGenerator:\n  - name: x\n    files: [k=a.yaml]\n    envs: [a.yaml]\nopenapi: {path: a.yaml}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(clusterA), 0o644); err != nil {
			t.Fatal(err)
		}
		kust := filepath.Join(dir, "kustomization.yaml")
		if err := os.WriteFile(kust, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := newRootFS(dir, Limits{}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		fs := &kustomizeFS{r: r, disk: filesys.MakeFsOnDisk(), top: filepath.Join(r.root, "kustomization.yaml")}
		out, err := fs.readKustomization(filepath.Join(r.root, "kustomization.yaml"))
		if err != nil {
			return
		}
		var k types.Kustomization
		if err := k.Unmarshal(out); err != nil {
			t.Fatalf("kustomize cannot read what the check hands it: %v\n%s", err, out)
		}
		for _, ref := range references(&k) {
			if looksRemote(ref.value) || filepath.IsAbs(ref.value) {
				t.Fatalf("%s = %q passed the check", ref.field, ref.value)
			}
		}
	})
}
