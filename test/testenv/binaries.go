package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Versions of the real components the bed runs. The cache is keyed by them,
// so changing one builds that component again and leaves the others alone.
const (
	KubernetesVersion = "v1.37.2"
	stagingVersion    = "v0.37.2" // k8s.io/* staging modules matching KubernetesVersion
	EtcdVersion       = "v3.6.16"
	KwokVersion       = "v0.8.0"
)

// kwokStages are the Stage files taken from the kwok module's kustomize/stage
// tree: nodes become Ready and keep their lease; pods become Ready, complete
// (Job pods) and are deleted.
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

// Binaries are the paths of the built components.
type Binaries struct {
	APIServer         string
	Scheduler         string
	ControllerManager string
	Etcd              string
	Kwok              string
	// KwokStages are the Stage files kwok is started with.
	KwokStages []string
}

// CacheDir is where binaries are built and kept: $ATOLL_TESTENV_CACHE, else
// the user's cache directory (for example ~/.cache/atoll/testenv).
func CacheDir() (string, error) {
	if d := os.Getenv("ATOLL_TESTENV_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory (set ATOLL_TESTENV_CACHE): %w", err)
	}
	return filepath.Join(d, "atoll", "testenv"), nil
}

// component is one cached build: a throw-away Go module that requires the
// upstream module and builds its commands.
type component struct {
	name    string   // cache key prefix, e.g. "kubernetes"
	version string   // cache key suffix
	module  string   // the module to require
	pkgs    []string // commands to build
	// installAs renames a built command (go build names it after the last
	// path element that is not a major version: "server" for etcd).
	installAs map[string]string
	ldflags   string
	// replace returns extra go.mod lines (replace directives), given the
	// directory of the throw-away module where `go mod download` runs.
	replace func(ctx context.Context, dir string) (string, error)
}

func (c component) dir(cache string) string {
	return filepath.Join(cache, c.name+"-"+c.version)
}

func components() []component {
	return []component{
		{
			name:    "kubernetes",
			version: KubernetesVersion,
			module:  "k8s.io/kubernetes",
			pkgs: []string{
				"k8s.io/kubernetes/cmd/kube-apiserver",
				"k8s.io/kubernetes/cmd/kube-controller-manager",
				"k8s.io/kubernetes/cmd/kube-scheduler",
			},
			ldflags: "-s -w" +
				" -X k8s.io/component-base/version.gitVersion=" + KubernetesVersion +
				" -X k8s.io/component-base/version.gitMajor=1" +
				" -X k8s.io/component-base/version.gitMinor=" + strings.Split(KubernetesVersion, ".")[1],
			replace: stagingReplaces,
		},
		{
			name:      "etcd",
			version:   EtcdVersion,
			module:    "go.etcd.io/etcd/server/v3",
			pkgs:      []string{"go.etcd.io/etcd/server/v3"},
			installAs: map[string]string{"server": "etcd"},
			ldflags:   "-s -w",
		},
		{
			name:    "kwok",
			version: KwokVersion,
			module:  "sigs.k8s.io/kwok",
			pkgs:    []string{"sigs.k8s.io/kwok/cmd/kwok"},
			ldflags: "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=" + KwokVersion,
		},
	}
}

// builtName is the name go build gives a command package's binary.
func builtName(pkg string) string {
	base := path.Base(pkg)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		return path.Base(path.Dir(pkg))
	}
	return base
}

// installedName is the name a command has in the cache.
func (c component) installedName(pkg string) string {
	if n, ok := c.installAs[builtName(pkg)]; ok {
		return n
	}
	return builtName(pkg)
}

// FindBinaries returns the cached binaries, or an error saying how to build
// them when any is missing.
func FindBinaries() (Binaries, error) {
	cache, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	return findBinaries(cache)
}

func findBinaries(cache string) (Binaries, error) {
	cs := components()
	k8s, etcd, kwok := cs[0].dir(cache), cs[1].dir(cache), cs[2].dir(cache)
	b := Binaries{
		APIServer:         filepath.Join(k8s, "bin", "kube-apiserver"),
		ControllerManager: filepath.Join(k8s, "bin", "kube-controller-manager"),
		Scheduler:         filepath.Join(k8s, "bin", "kube-scheduler"),
		Etcd:              filepath.Join(etcd, "bin", "etcd"),
		Kwok:              filepath.Join(kwok, "bin", "kwok"),
	}
	for _, s := range kwokStages {
		b.KwokStages = append(b.KwokStages, filepath.Join(kwok, "stages", filepath.Base(s)))
	}
	for _, p := range append([]string{b.APIServer, b.ControllerManager, b.Scheduler, b.Etcd, b.Kwok}, b.KwokStages...) {
		if _, err := os.Stat(p); err != nil {
			return Binaries{}, fmt.Errorf("test bed binary %s is missing: run `go run ./test/env build` (or `make testenv`): %w", p, err)
		}
	}
	return b, nil
}

// Build builds every missing component into the cache and returns the
// binaries. Progress goes to w. Concurrent builds (two test packages, two
// shells) serialise on a lock file; the second one finds the cache filled.
func Build(ctx context.Context, w io.Writer) (Binaries, error) {
	cache, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	if b, err := findBinaries(cache); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create cache %s: %w", cache, err)
	}
	unlock, err := lockFile(filepath.Join(cache, "build.lock"), w)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	for _, c := range components() {
		if err := c.build(ctx, cache, w); err != nil {
			return Binaries{}, err
		}
	}
	return findBinaries(cache)
}

// lockFile takes an exclusive flock, saying so when it has to wait.
func lockFile(path string, w io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(w, "testenv: another build holds %s; waiting for it\n", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func (c component) build(ctx context.Context, cache string, w io.Writer) error {
	dir := c.dir(cache)
	bin := filepath.Join(dir, "bin")
	done := true
	for _, p := range c.pkgs {
		if _, err := os.Stat(filepath.Join(bin, c.installedName(p))); err != nil {
			done = false
		}
	}
	if done && (c.name != "kwok" || stagesPresent(dir)) {
		return nil
	}
	start := time.Now()
	fmt.Fprintf(w, "testenv: building %s %s (the first build takes minutes)\n", c.name, c.version)
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", src, err)
	}
	gomod := fmt.Sprintf("module atoll.test/%s\n\ngo 1.26\n\nrequire %s %s\n", c.name, c.module, c.version)
	if c.replace != nil {
		r, err := c.replace(ctx, src)
		if err != nil {
			return fmt.Errorf("build %s: %w", c.name, err)
		}
		gomod += r
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return fmt.Errorf("write go.mod for %s: %w", c.name, err)
	}
	get := []string{"get"}
	for _, p := range c.pkgs {
		get = append(get, p+"@"+c.version)
	}
	if err := goCommand(ctx, src, w, nil, get...); err != nil {
		return fmt.Errorf("build %s: %w", c.name, err)
	}
	tmp, err := os.MkdirTemp(dir, "bin-")
	if err != nil {
		return fmt.Errorf("build %s: %w", c.name, err)
	}
	defer os.RemoveAll(tmp)
	args := append([]string{"build", "-v", "-trimpath", "-ldflags", c.ldflags, "-o", tmp + string(filepath.Separator)}, c.pkgs...)
	if err := goCommand(ctx, src, w, newProgress(w, c.name, start), args...); err != nil {
		return fmt.Errorf("build %s: %w", c.name, err)
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("build %s: %w", c.name, err)
	}
	for _, p := range c.pkgs {
		if err := os.Rename(filepath.Join(tmp, builtName(p)), filepath.Join(bin, c.installedName(p))); err != nil {
			return fmt.Errorf("install %s: %w", c.installedName(p), err)
		}
	}
	if c.name == "kwok" {
		if err := copyStages(ctx, src, dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "testenv: built %s %s in %s\n", c.name, c.version, time.Since(start).Round(time.Second))
	return nil
}

func stagesPresent(dir string) bool {
	for _, s := range kwokStages {
		if _, err := os.Stat(filepath.Join(dir, "stages", filepath.Base(s))); err != nil {
			return false
		}
	}
	return true
}

// moduleDir downloads mod@version and returns its directory and go.mod path
// in the module cache.
func moduleDir(ctx context.Context, src, modVersion string) (dir, gomod string, err error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = src
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go mod download %s: %w", modVersion, exitDetail(err))
	}
	var m struct{ Dir, GoMod string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	return m.Dir, m.GoMod, nil
}

// stagingReplaces turns k8s.io/kubernetes' own `replace k8s.io/x =>
// ./staging/src/k8s.io/x` lines into `replace k8s.io/x => k8s.io/x v0.N.M`,
// which is what makes the kubernetes module buildable as a dependency.
func stagingReplaces(ctx context.Context, src string) (string, error) {
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module atoll.test/probe\n\ngo 1.26\n"), 0o644); err != nil {
		return "", err
	}
	_, gomod, err := moduleDir(ctx, src, "k8s.io/kubernetes@"+KubernetesVersion)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("\nreplace (\n")
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == "=>" && strings.HasPrefix(f[2], "./staging/") {
			fmt.Fprintf(&b, "\t%s => %s %s\n", f[0], f[0], stagingVersion)
			n++
		}
	}
	b.WriteString(")\n")
	if n == 0 {
		return "", errors.New("no staging replace directives found in k8s.io/kubernetes go.mod")
	}
	return b.String(), nil
}

func copyStages(ctx context.Context, src, dir string) error {
	mod, _, err := moduleDir(ctx, src, "sigs.k8s.io/kwok@"+KwokVersion)
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "stages")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, s := range kwokStages {
		data, err := os.ReadFile(filepath.Join(mod, "kustomize", "stage", s))
		if err != nil {
			return fmt.Errorf("read kwok stage: %w", err)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(s)), data, 0o644); err != nil {
			return fmt.Errorf("write kwok stage: %w", err)
		}
	}
	return nil
}

// goCommand runs the go tool in dir. Its stderr goes to w, or, with a
// progress, is summarised by it.
func goCommand(ctx context.Context, dir string, w io.Writer, p *progress, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if p == nil {
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("go %s: %w", args[0], err)
	}
	tail := p.consume(stderr)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", args[0], err, strings.Join(tail, "\n"))
	}
	return nil
}

// progress prints a line every 15 s while `go build -v` compiles packages.
type progress struct {
	w     io.Writer
	name  string
	start time.Time
}

func newProgress(w io.Writer, name string, start time.Time) *progress {
	return &progress{w: w, name: name, start: start}
}

// consume reads go build -v output until it ends, printing progress on a
// ticker, and returns the last lines (the error, if the build fails).
func (p *progress) consume(r io.Reader) []string {
	var (
		mu   sync.Mutex
		n    int
		tail []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			n++
			tail = append(tail, sc.Text())
			if len(tail) > 30 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return tail
		case <-tick.C:
			mu.Lock()
			fmt.Fprintf(p.w, "testenv: building %s: %d packages compiled, %s elapsed\n", p.name, n, time.Since(p.start).Round(time.Second))
			mu.Unlock()
		}
	}
}

func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
