package reconcile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizationNames are the file names kustomize recognises, in its order.
var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// findKustomization returns the kustomization file in dir, or "".
func findKustomization(dir string) string {
	for _, n := range kustomizationNames {
		if fi, err := os.Lstat(filepath.Join(dir, n)); err == nil && !fi.IsDir() {
			return filepath.Join(dir, n)
		}
	}
	return ""
}

// kustomizeMu serialises builds: kustomize keeps its OpenAPI schema in
// package-level state.
var kustomizeMu sync.Mutex

// buildKustomization runs kustomize on dir (resolved, inside the root)
// with plugins off, load restrictions on and every file read through r.
func buildKustomization(r *rootFS, dir, kustFile string) ([]*document, error) {
	fs := &kustomizeFS{r: r, disk: filesys.MakeFsOnDisk(), top: kustFile}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	k := krusty.MakeKustomizer(opts)

	kustomizeMu.Lock()
	m, err := k.Run(fs, dir)
	kustomizeMu.Unlock()
	if fs.err != nil {
		return nil, fs.err // our own refusal, clearer than kustomize's wrapping
	}
	if err != nil {
		if errs := r.syntaxErrors(); len(errs) > 0 {
			return nil, errs // with file and line, which kustomize's message lacks
		}
		return nil, fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
	}
	resources := m.Resources()
	docs := make([]*document, 0, len(resources))
	origins := make([]string, len(resources))
	for i, res := range resources {
		if o, err := res.GetOrigin(); err == nil && o != nil && o.Path != "" && o.Repo == "" {
			origins[i] = o.Path
		}
	}
	if err := m.RemoveOriginAnnotations(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: remove origin annotations: %w", r.rel(dir), err)
	}
	for i, res := range resources {
		d := &document{file: r.rel(kustFile), node: res.YNode(), kustomization: r.rel(kustFile)}
		if origins[i] != "" {
			if real, err := r.resolve(filepath.Join(dir, filepath.FromSlash(origins[i]))); err == nil {
				d.file = r.rel(real)
				kind, name := res.GetKind(), res.GetName()
				d.findSrc = func() *yaml.Node {
					srcDocs, err := r.parse(real)
					if err != nil {
						return nil
					}
					return matchSource(srcDocs, kind, name)
				}
			}
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// matchSource finds the document for kind/name in a source file: the one
// with that kind and name, else the only one of that kind.
func matchSource(docs []*yaml.Node, kind, name string) *yaml.Node {
	var sameKind []*yaml.Node
	for _, d := range docs {
		if d.Kind != yaml.MappingNode || scalarField(d, "kind") != kind {
			continue
		}
		sameKind = append(sameKind, d)
		for i := 0; i+1 < len(d.Content); i += 2 {
			if d.Content[i].Value == "metadata" && scalarField(resolveAlias(d.Content[i+1]), "name") == name {
				return d
			}
		}
	}
	if len(sameKind) == 1 {
		return sameKind[0]
	}
	return nil
}

var errReadOnly = errors.New("read-only file system")

// kustomizeFS is the filesys.FileSystem kustomize reads through: confined
// to the root, read-only, counted against the limits. It checks every
// kustomization file before kustomize sees it (remote references refused)
// and adds the originAnnotations build option to the top one so that
// every output object names its source file.
type kustomizeFS struct {
	r    *rootFS
	disk filesys.FileSystem
	top  string // resolved path of the top kustomization file

	mu  sync.Mutex
	err error // first refusal, reported instead of kustomize's wrapping
}

var _ filesys.FileSystem = (*kustomizeFS)(nil)

func (f *kustomizeFS) fail(err error) error {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	return err
}

func (f *kustomizeFS) Create(string) (filesys.File, error) { return nil, errReadOnly }
func (f *kustomizeFS) Mkdir(string) error                  { return errReadOnly }
func (f *kustomizeFS) MkdirAll(string) error               { return errReadOnly }
func (f *kustomizeFS) RemoveAll(string) error              { return errReadOnly }
func (f *kustomizeFS) WriteFile(string, []byte) error      { return errReadOnly }

func (f *kustomizeFS) Open(p string) (filesys.File, error) {
	real, err := f.r.resolve(p)
	if err != nil {
		return nil, f.fail(err)
	}
	return f.disk.Open(real)
}

func (f *kustomizeFS) IsDir(p string) bool {
	real, err := f.r.resolve(p)
	return err == nil && f.disk.IsDir(real)
}

func (f *kustomizeFS) ReadDir(p string) ([]string, error) {
	real, err := f.r.resolve(p)
	if err != nil {
		return nil, f.fail(err)
	}
	return f.disk.ReadDir(real)
}

func (f *kustomizeFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if _, err := f.r.resolve(p); err != nil {
		return "", "", f.fail(err)
	}
	d, name, err := f.disk.CleanedAbs(p)
	if err != nil {
		return d, name, err
	}
	if !f.r.within(string(d)) {
		return "", "", f.fail(fmt.Errorf("%s: %w", p, ErrOutsideRoot))
	}
	return d, name, nil
}

func (f *kustomizeFS) Exists(p string) bool {
	real, err := f.r.resolve(p)
	return err == nil && f.disk.Exists(real)
}

func (f *kustomizeFS) Glob(pattern string) ([]string, error) {
	all, err := f.disk.Glob(pattern)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(p string) bool { _, err := f.r.resolve(p); return err != nil }), nil
}

func (f *kustomizeFS) Walk(p string, fn filepath.WalkFunc) error {
	real, err := f.r.resolve(p)
	if err != nil {
		return f.fail(err)
	}
	return f.disk.Walk(real, fn)
}

func (f *kustomizeFS) ReadFile(p string) ([]byte, error) {
	real, err := f.r.resolve(p)
	if err != nil {
		return nil, f.fail(err)
	}
	if slices.Contains(kustomizationNames, filepath.Base(real)) {
		return f.readKustomization(real)
	}
	b, err := f.r.readFile(real)
	if err != nil {
		return nil, f.fail(err)
	}
	return b, nil
}

// readKustomization checks a kustomization file and, for the top one,
// turns origin annotations on.
func (f *kustomizeFS) readKustomization(real string) ([]byte, error) {
	docs, err := f.r.parse(real)
	if err != nil {
		return nil, f.fail(err)
	}
	b, _ := f.r.readFile(real) // cached by parse
	if len(docs) != 1 || docs[0].Kind != yaml.MappingNode {
		return b, nil // let kustomize explain
	}
	k := docs[0]
	if err := f.checkReferences(real, k); err != nil {
		return nil, f.fail(err)
	}
	if real != f.top {
		return b, nil
	}
	out, err := withOriginAnnotations(k)
	if err != nil {
		return nil, f.fail(fmt.Errorf("%s: %w", f.r.rel(real), err))
	}
	return out, nil
}

// withOriginAnnotations returns the kustomization with
// buildMetadata: [originAnnotations] added, leaving k unchanged.
func withOriginAnnotations(k *yaml.Node) ([]byte, error) {
	c := *k
	c.Content = slices.Clone(k.Content)
	for i := 0; i+1 < len(c.Content); i += 2 {
		if c.Content[i].Value != "buildMetadata" {
			continue
		}
		v := *resolveAlias(c.Content[i+1])
		if v.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("buildMetadata: expected a list")
		}
		for _, e := range v.Content {
			if e.Value == types.OriginAnnotations {
				return yaml.Marshal(&c)
			}
		}
		v.Content = append(slices.Clone(v.Content), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: types.OriginAnnotations})
		v.Style = 0
		c.Content[i+1] = &v
		return yaml.Marshal(&c)
	}
	c.Content = append(c.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "buildMetadata"},
		&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: types.OriginAnnotations}}})
	return yaml.Marshal(&c)
}

// Fields of a kustomization whose values name files or directories to load.
var (
	kustomizeDirFields  = []string{"resources", "bases", "components"}
	kustomizeFileFields = []string{"crds", "configurations", "generators", "transformers", "validators", "patchesStrategicMerge", "path", "files", "envs", "env"}
)

// checkReferences refuses remote references and references that leave
// the root or do not exist, before kustomize would try to fetch them.
func (f *kustomizeFS) checkReferences(real string, k *yaml.Node) error {
	dir := filepath.Dir(real)
	file := f.r.rel(real)
	var errs ErrorList
	var walk func(n *yaml.Node, field string)
	check := func(n *yaml.Node, field string) {
		ref := n.Value
		if field == "files" || field == "envs" || field == "env" {
			if _, after, ok := strings.Cut(ref, "="); ok { // key=path
				ref = after
			}
		}
		if ref == "" || strings.Contains(ref, "\n") { // inline configuration
			return
		}
		fail := func(cause error, format string, args ...any) {
			errs = append(errs, &FieldError{File: file, Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...), cause: cause})
		}
		if looksRemote(ref) {
			fail(ErrRemoteRefused, "%q: %v", ref, ErrRemoteRefused)
			return
		}
		if filepath.IsAbs(ref) {
			fail(ErrOutsideRoot, "%q: absolute paths are refused", ref)
			return
		}
		target, err := f.r.resolve(filepath.Join(dir, filepath.FromSlash(ref)))
		if err != nil {
			fail(ErrOutsideRoot, "%q: %v", ref, ErrOutsideRoot)
			return
		}
		fi, err := os.Stat(target)
		if err != nil {
			fail(ErrRemoteRefused, "%q: not found in the repository (%v)", ref, ErrRemoteRefused)
			return
		}
		if fi.IsDir() && slices.Contains(kustomizeDirFields, field) {
			first, _, _ := strings.Cut(filepath.ToSlash(ref), "/")
			if first != "." && first != ".." && strings.Contains(first, ".") {
				fail(ErrRemoteRefused, "%q: looks like a remote base (host name): %v", ref, ErrRemoteRefused)
			}
		}
	}
	walk = func(n *yaml.Node, field string) {
		n = resolveAlias(n)
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "fieldSpecs" { // field paths, not files
					continue
				}
				walk(n.Content[i+1], n.Content[i].Value)
			}
		case yaml.SequenceNode:
			for _, e := range n.Content {
				walk(e, field)
			}
		case yaml.ScalarNode:
			if slices.Contains(kustomizeDirFields, field) || slices.Contains(kustomizeFileFields, field) {
				check(n, field)
			}
		}
	}
	for i := 0; i+1 < len(k.Content); i += 2 {
		key := k.Content[i].Value
		switch key {
		case "helmCharts", "helmGlobals", "helmChartInflationGenerator":
			errs = append(errs, &FieldError{File: file, Line: k.Content[i].Line, Field: key, Message: "helm charts are refused (plugins are off)"})
			continue
		}
		walk(k.Content[i+1], key)
	}
	if len(errs) > 0 {
		return sortErrors(errs)
	}
	return nil
}

// looksRemote reports whether a kustomize reference names a URL or a git
// repository rather than a local path.
func looksRemote(ref string) bool {
	return strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") ||
		strings.HasPrefix(ref, "git::") || strings.Contains(ref, "?ref=") ||
		strings.Contains(ref, "?version=") || strings.HasPrefix(ref, "github.com/") ||
		strings.HasPrefix(ref, "gitlab.com/") || strings.HasPrefix(ref, "bitbucket.org/")
}
