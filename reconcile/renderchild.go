package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
)

// A kustomize build runs in a process of its own, started from the same
// executable: kustomize cannot be cancelled, keeps package-level state and
// can be made to allocate without bound (a few hundred bytes of YAML
// aliases), so a build that runs over its time is killed with everything it
// holds, and no build can slow or block the next. The render process
//   - limits its own data segment (Limits.MaxMemoryBytes) before it reads
//     anything, and runs the garbage collector against that limit;
//   - cannot reach the network: net/http's default transport, which
//     kustomize fetches URLs with, refuses every request, and the process
//     has no PATH, so no git (or any other program) can be started;
//   - reads only through the render's rootFS (confined, counted).
// What it sends back is bounded too: at most renderOutputFactor times
// Limits.MaxBytes.

// renderChildEnv marks a process started to run one build.
const renderChildEnv = "ATOLL_RENDER_PROCESS"

// renderOutputFactor bounds a build's output against the bytes it may read.
const renderOutputFactor = 4

// renderExe is the executable builds run in; set by ServeRender.
var renderExe string

// ServeRender must be called first in main (and in TestMain of tests that
// render kustomizations). In a process Render started to run a build it
// runs that build, writes the result to standard output and exits; in any
// other process it only records the executable, which builds then run in.
// Without it, rendering a kustomization fails with ErrNoRenderProcess.
func ServeRender() {
	if os.Getenv(renderChildEnv) == "" {
		// /proc/self/exe runs this very binary even once its file has been
		// replaced or removed (an upgrade in place).
		exe := "/proc/self/exe"
		if _, err := os.Stat(exe); err != nil {
			if exe, err = os.Executable(); err != nil {
				return
			}
		}
		renderExe = exe
		return
	}
	os.Exit(serveRender(os.Stdin, os.Stdout))
}

// ErrNoRenderProcess is returned for a kustomization when the program did
// not call ServeRender.
var ErrNoRenderProcess = errors.New("kustomize builds need reconcile.ServeRender in main")

// renderRequest is what a render process is asked, on standard input.
type renderRequest struct {
	Root          string // resolved repository root
	Dir           string // resolved fleet directory
	Kustomization string // resolved kustomization file in Dir
	Limits        Limits
}

// renderResult is what it answers, on standard output.
type renderResult struct {
	Objects []renderedObject `json:",omitempty"`
	Files   int              // files read
	Errors  []renderError    `json:",omitempty"` // problems in files
	Error   *renderError     `json:",omitempty"` // any other failure
}

// renderedObject is one object of the build.
type renderedObject struct {
	YAML   string
	Origin string // source file, relative to the kustomization's directory
}

// renderError carries a FieldError, or an error's message, with its
// sentinel cause by name.
type renderError struct {
	File    string `json:",omitempty"`
	Line    int    `json:",omitempty"`
	Field   string `json:",omitempty"`
	Message string
	Cause   string `json:",omitempty"`
}

// causes name the sentinels an error may carry across the process boundary.
var causes = map[string]error{"limit": ErrLimitExceeded, "outside": ErrOutsideRoot, "remote": ErrRemoteRefused}

func causeName(err error) string {
	for name, c := range causes {
		if errors.Is(err, c) {
			return name
		}
	}
	return ""
}

// childError is an error read back from a render process.
type childError struct {
	msg   string
	cause error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.cause }

// serveRender runs one build in a render process and returns its exit code.
func serveRender(in io.Reader, out io.Writer) int {
	var req renderRequest
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "render process: read request:", err)
		return 2
	}
	req.Limits = req.Limits.withDefaults()
	if err := limitMemory(req.Limits.MaxMemoryBytes); err != nil {
		fmt.Fprintln(os.Stderr, "render process:", err)
		return 2
	}
	offline := &offlineTransport{}
	http.DefaultTransport = offline

	var res renderResult
	r, err := newRootFS(req.Root, req.Limits)
	if err == nil {
		res.Objects, err = kustomize(r, req.Dir, req.Kustomization)
		r.mu.Lock()
		res.Files = r.files
		r.mu.Unlock()
	}
	if url := offline.refused(); url != "" {
		// Whatever kustomize made of the refusal, this is the cause.
		err = fmt.Errorf("kustomize build %s: fetching %q: %w", r.rel(req.Dir), url, ErrRemoteRefused)
	}
	if err != nil {
		res.Objects = nil
		var list ErrorList
		var fe *FieldError
		switch {
		case errors.As(err, &list):
		case errors.As(err, &fe):
			list = ErrorList{fe}
		}
		for _, e := range list {
			res.Errors = append(res.Errors, renderError{File: e.File, Line: e.Line, Field: e.Field, Message: e.Message, Cause: causeName(e.cause)})
		}
		if len(list) == 0 {
			res.Error = &renderError{Message: err.Error(), Cause: causeName(err)}
		}
	}
	if err := json.NewEncoder(out).Encode(&res); err != nil {
		fmt.Fprintln(os.Stderr, "render process: write result:", err)
		return 2
	}
	return 0
}

// limitMemory caps the process's data segment, which holds Go's heap, and
// sets the garbage collector's target below it.
func limitMemory(n int64) error {
	lim := &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
		return fmt.Errorf("limit memory to %d bytes: %w", n, err)
	}
	debug.SetMemoryLimit(n / 2)
	return nil
}

// offlineTransport refuses every request and remembers the first URL.
type offlineTransport struct {
	mu  sync.Mutex
	url string
}

func (t *offlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	if t.url == "" {
		t.url = req.URL.Redacted()
	}
	t.mu.Unlock()
	return nil, ErrRemoteRefused
}

func (t *offlineTransport) refused() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.url
}

// runRenderChild runs req in a new render process, bounded by ctx and by
// req.Limits, and returns its result; problems in files come back as an
// ErrorList.
func runRenderChild(ctx context.Context, req renderRequest) (*renderResult, error) {
	if renderExe == "" {
		return nil, ErrNoRenderProcess
	}
	in, err := json.Marshal(&req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, renderExe)
	cmd.Env = []string{renderChildEnv + "=1"} // no PATH: no programs to start
	cmd.Dir = req.Root
	cmd.Stdin = bytes.NewReader(in)
	out := &cappedBuffer{max: renderOutputFactor*req.Limits.MaxBytes + 1<<20, full: cancel}
	stderr := &cappedBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, stderr
	runErr := cmd.Run()
	switch {
	case out.overflow:
		return nil, fmt.Errorf("kustomize build: output larger than %d bytes: %w", out.max, ErrLimitExceeded)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case runErr != nil:
		if outOfMemory(stderr.String()) {
			return nil, fmt.Errorf("kustomize build: more than %d bytes of memory: %w", req.Limits.MaxMemoryBytes, ErrLimitExceeded)
		}
		return nil, fmt.Errorf("kustomize build: render process failed (%v): %s", runErr, truncate(firstLine(strings.TrimSpace(stderr.String())), 512))
	}
	var res renderResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("kustomize build: unreadable result of the render process: %w", err)
	}
	if len(res.Errors) > 0 {
		list := make(ErrorList, len(res.Errors))
		for i, e := range res.Errors {
			list[i] = &FieldError{File: e.File, Line: e.Line, Field: e.Field, Message: e.Message, cause: causes[e.Cause]}
		}
		return nil, list
	}
	if res.Error != nil {
		return nil, &childError{msg: res.Error.Message, cause: causes[res.Error.Cause]}
	}
	return &res, nil
}

// outOfMemory reports whether a render process's standard error says it
// ran out of memory: Go's runtime, a failed system call, or the race
// detector's allocator (ENOMEM) under `go test -race`.
func outOfMemory(stderr string) bool {
	for _, s := range []string{"out of memory", "cannot allocate memory", "failed to allocate"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// cappedBuffer keeps the first max bytes written to it and drops the
// rest; the first write that does not fit calls full.
type cappedBuffer struct {
	bytes.Buffer
	max      int64
	full     func()
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if int64(b.Len()+len(p)) > b.max {
		if !b.overflow && b.full != nil {
			b.full()
		}
		b.overflow = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
