package reconcile

import (
	"context"
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
	sigsyaml "sigs.k8s.io/yaml"
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

// buildKustomization builds the kustomization in dir (resolved, inside
// the root) in a render process (renderchild.go) and returns its objects,
// each naming its source file, with the number of files the build read.
func buildKustomization(ctx context.Context, r *rootFS, dir, kustFile string) ([]*document, int, error) {
	res, err := runRenderChild(ctx, renderRequest{Root: r.root, Dir: dir, Kustomization: kustFile, Limits: r.limits})
	if err != nil {
		return nil, 0, err
	}
	docs := make([]*document, 0, len(res.Objects))
	for _, o := range res.Objects {
		nodes, err := parseYAML(r.rel(kustFile), []byte(o.YAML))
		if err != nil || len(nodes) != 1 {
			return nil, 0, fmt.Errorf("kustomize build %s: unreadable output of the render process", r.rel(dir))
		}
		d := &document{file: r.rel(kustFile), node: nodes[0], kustomization: r.rel(kustFile)}
		if o.Origin != "" {
			if real, err := r.resolve(filepath.Join(dir, filepath.FromSlash(o.Origin))); err == nil {
				d.file = r.rel(real)
				kind, name := scalarField(nodes[0], "kind"), metadataName(nodes[0])
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
	return docs, res.Files, nil
}

// kustomize runs kustomize on dir with plugins off, load restrictions on
// and every file read through r; it is what a render process does.
func kustomize(r *rootFS, dir, kustFile string) ([]renderedObject, error) {
	fs := &kustomizeFS{r: r, disk: filesys.MakeFsOnDisk(), top: kustFile}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	m, err := krusty.MakeKustomizer(opts).Run(fs, dir)
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
	objs := make([]renderedObject, len(resources))
	for i, res := range resources {
		if o, err := res.GetOrigin(); err == nil && o != nil && o.Path != "" && o.Repo == "" {
			objs[i].Origin = o.Path
		}
	}
	if err := m.RemoveOriginAnnotations(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: remove origin annotations: %w", r.rel(dir), err)
	}
	for i, res := range resources {
		b, err := yaml.Marshal(res.YNode())
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
		}
		objs[i].YAML = string(b)
	}
	return objs, nil
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
		if metadataName(d) == name {
			return d
		}
	}
	if len(sameKind) == 1 {
		return sameKind[0]
	}
	return nil
}

// metadataName returns metadata.name of an object, or "".
func metadataName(obj *yaml.Node) string {
	for i := 0; i+1 < len(obj.Content); i += 2 {
		if obj.Content[i].Value == "metadata" {
			return scalarField(resolveAlias(obj.Content[i+1]), "name")
		}
	}
	return ""
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

// readKustomization checks a kustomization file and hands kustomize the
// kustomization it checked: the file is decoded the way kustomize decodes
// it (keys matched case-insensitively, !!binary values decoded, merge keys
// and anchors applied), every reference in the decoded form is checked,
// and that form is what kustomize reads, written out again. No spelling of
// a key or value can mean one thing to the check and another to kustomize.
// The top kustomization also gets origin annotations turned on.
func (f *kustomizeFS) readKustomization(real string) ([]byte, error) {
	docs, err := f.r.parse(real)
	if err != nil {
		return nil, f.fail(err)
	}
	b, _ := f.r.readFile(real) // cached by parse
	var k types.Kustomization
	if err := k.Unmarshal(b); err != nil {
		return nil, f.fail(&FieldError{File: f.r.rel(real), Message: err.Error()})
	}
	k.FixKustomization() // as kustomize does next: bases into resources, env into envs

	var src *yaml.Node // for line numbers
	if len(docs) == 1 {
		src = docs[0]
	}
	if err := f.checkReferences(real, &k, src); err != nil {
		return nil, f.fail(err)
	}
	if real == f.top && !slices.Contains(k.BuildMetadata, types.OriginAnnotations) {
		k.BuildMetadata = append(k.BuildMetadata, types.OriginAnnotations)
	}
	out, err := sigsyaml.Marshal(&k)
	if err != nil {
		return nil, f.fail(fmt.Errorf("%s: %w", f.r.rel(real), err))
	}
	return out, nil
}

// reference is one value of a kustomization that names a file or directory.
type reference struct {
	field string // e.g. "resources[2]", "patches[0].path"
	value string
	dir   bool // resources (bases among them) and components: may name a directory
}

// references lists every file and directory a kustomization names.
// Inline configuration (a value spanning lines) names none.
func references(k *types.Kustomization) []reference {
	var refs []reference
	one := func(field string, dir bool, v string) {
		if v != "" && !strings.Contains(v, "\n") {
			refs = append(refs, reference{field: field, value: v, dir: dir})
		}
	}
	list := func(field string, dir bool, values []string) {
		for i, v := range values {
			one(fmt.Sprintf("%s[%d]", field, i), dir, v)
		}
	}
	list("resources", true, k.Resources)
	list("components", true, k.Components)
	list("crds", false, k.Crds)
	list("configurations", false, k.Configurations)
	list("generators", false, k.Generators)
	list("transformers", false, k.Transformers)
	list("validators", false, k.Validators)
	//lint:ignore SA1019 deprecated, and still applied by kustomize
	for i, p := range k.PatchesStrategicMerge {
		one(fmt.Sprintf("patchesStrategicMerge[%d]", i), false, string(p))
	}
	//lint:ignore SA1019 deprecated, and still applied by kustomize
	for i, p := range k.PatchesJson6902 {
		one(fmt.Sprintf("patchesJson6902[%d].path", i), false, p.Path)
	}
	for i, p := range k.Patches {
		one(fmt.Sprintf("patches[%d].path", i), false, p.Path)
	}
	for i, r := range k.Replacements {
		one(fmt.Sprintf("replacements[%d].path", i), false, r.Path)
	}
	one("openapi.path", false, k.OpenAPI["path"])
	sources := func(field string, s types.KvPairSources) {
		for j, f := range s.FileSources {
			if _, after, ok := strings.Cut(f, "="); ok { // key=path
				f = after
			}
			one(fmt.Sprintf("%s.files[%d]", field, j), false, f)
		}
		list(field+".envs", false, s.EnvSources)
	}
	for i, g := range k.ConfigMapGenerator {
		sources(fmt.Sprintf("configMapGenerator[%d]", i), g.KvPairSources)
	}
	for i, g := range k.SecretGenerator {
		sources(fmt.Sprintf("secretGenerator[%d]", i), g.KvPairSources)
	}
	return refs
}

// checkReferences refuses helm, remote references and references that
// leave the root or do not exist, before kustomize would try to fetch
// them. src, the file as parsed, only supplies line numbers.
func (f *kustomizeFS) checkReferences(real string, k *types.Kustomization, src *yaml.Node) error {
	dir := filepath.Dir(real)
	file := f.r.rel(real)
	var errs ErrorList
	if k.HelmGlobals != nil || len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 {
		errs = append(errs, &FieldError{File: file, Line: lineOf(src, "helm"), Field: "helmCharts", Message: "helm charts are refused (plugins are off)"})
	}
	for _, ref := range references(k) {
		fail := func(cause error, format string, args ...any) {
			errs = append(errs, &FieldError{File: file, Line: lineOf(src, ref.value), Field: ref.field, Message: fmt.Sprintf(format, args...), cause: cause})
		}
		if looksRemote(ref.value) {
			fail(ErrRemoteRefused, "%q: %v", ref.value, ErrRemoteRefused)
			continue
		}
		if filepath.IsAbs(ref.value) {
			fail(ErrOutsideRoot, "%q: absolute paths are refused", ref.value)
			continue
		}
		target, err := f.r.resolve(filepath.Join(dir, filepath.FromSlash(ref.value)))
		if err != nil {
			fail(ErrOutsideRoot, "%q: %v", ref.value, ErrOutsideRoot)
			continue
		}
		fi, err := os.Stat(target)
		if err != nil {
			fail(ErrRemoteRefused, "%q: not found in the repository (%v)", ref.value, ErrRemoteRefused)
			continue
		}
		if fi.IsDir() && ref.dir {
			first, _, _ := strings.Cut(filepath.ToSlash(ref.value), "/")
			if first != "." && first != ".." && strings.Contains(first, ".") {
				fail(ErrRemoteRefused, "%q: looks like a remote base (host name): %v", ref.value, ErrRemoteRefused)
			}
		}
	}
	if len(errs) > 0 {
		return sortErrors(errs)
	}
	return nil
}

// lineOf returns the line of the first scalar in n whose value is value,
// or of the first key that starts with it (case-insensitively); 0 when
// there is none (a value kustomize decoded, such as !!binary).
func lineOf(n *yaml.Node, value string) int {
	if n == nil {
		return 0
	}
	var key int
	var walk func(n *yaml.Node, depth int) int
	walk = func(n *yaml.Node, depth int) int {
		if depth > 64 {
			return 0
		}
		if n.Kind == yaml.ScalarNode && n.Value == value {
			return n.Line
		}
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 && key == 0 && c.Kind == yaml.ScalarNode &&
				strings.HasPrefix(strings.ToLower(c.Value), value) {
				key = c.Line
			}
			if l := walk(c, depth+1); l > 0 {
				return l
			}
		}
		return 0
	}
	if l := walk(n, 0); l > 0 {
		return l
	}
	return key
}

// looksRemote reports whether a kustomize reference names a URL or a git
// repository rather than a local path.
func looksRemote(ref string) bool {
	return strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") ||
		strings.HasPrefix(ref, "git::") || strings.Contains(ref, "?ref=") ||
		strings.Contains(ref, "?version=") || strings.HasPrefix(ref, "github.com/") ||
		strings.HasPrefix(ref, "gitlab.com/") || strings.HasPrefix(ref, "bitbucket.org/")
}
