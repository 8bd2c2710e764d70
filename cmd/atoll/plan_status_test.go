package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testStatusToken = "s3cret-plan-token"

// giteaStatus is one request the fake Gitea received.
type giteaStatus struct {
	Method, Path, Authorization string
	Body                        map[string]string
}

// fakeGitea answers the commit-status API with code and records each
// request, checking nothing itself: the tests assert the recorded shape.
type fakeGitea struct {
	*httptest.Server
	mu   sync.Mutex
	got  []giteaStatus
	code int
}

func newFakeGitea(t *testing.T, code int) *fakeGitea {
	t.Helper()
	f := &fakeGitea{code: code}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.got = append(f.got, giteaStatus{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.code)
		if f.code >= 300 {
			// A server echoing the request must not leak the token.
			_, _ = w.Write([]byte(`{"message":"denied for token ` + testStatusToken + `"}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":1}`))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGitea) requests() []giteaStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]giteaStatus(nil), f.got...)
}

func TestPlanPostStatus(t *testing.T) {
	repo, ids := gitRepo(t, []struct{ message, tree string }{
		{"Add the first clusters", "testdata/fleet-base"},
		{"Add cern-003, a GPU policy; retire old-1", "testdata/fleet-head"},
		{"Break cern.yaml", "testdata/fleet-invalid"},
		{"Remove everything", ""},
		{"Remove everything, on purpose\n\nAtoll-Allow-Removal: 3", ""},
	})
	addRemote := exec.Command("git", "-C", repo, "remote", "add", "origin", "https://gitea.example.com/fleet-org/fleet.git")
	if out, err := addRemote.CombinedOutput(); err != nil {
		t.Fatalf("git remote add: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testStatusToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		serverCode int
		args       []string // after plan --repo REPO --path fleet --post-status ...
		base, head int      // indexes into ids
		wantCode   int
		wantPath   string // "" when nothing must be posted
		wantState  string
		wantDesc   string // exact, or prefix when wantDescPrefix
		descPrefix bool
		wantStderr string
	}{
		{name: "changes: success with the summary", serverCode: http.StatusCreated, base: 0, head: 1, wantCode: 1,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[1], wantState: "success",
			wantDesc:   "+1 node cern-003 · -1 node old-1 · label changed on gke-001 · taint changed on gke-001 · capacity changed on cern-001 · cordon changed on c…",
			wantStderr: "posted atoll/plan success on " + ids[1][:7]},
		{name: "no changes", serverCode: http.StatusCreated, base: 1, head: 1, wantCode: 0,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[1], wantState: "success", wantDesc: "no node changes"},
		{name: "invalid head: failure naming file and line", serverCode: http.StatusCreated, base: 1, head: 2, wantCode: 2,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[2], wantState: "failure",
			wantDesc: "invalid fleet declarations: head: fleet/cern.yaml:7: spec.credentials.path: ", descPrefix: true, wantStderr: "plan: invalid fleet declarations"},
		{name: "breaker would refuse: failure with its reason", serverCode: http.StatusCreated, base: 1, head: 3, wantCode: 3,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[3], wantState: "failure", descPrefix: true, wantDesc: "breaker: "},
		{name: "breaker allowed by the trailer: success", serverCode: http.StatusCreated, base: 1, head: 4, wantCode: 1,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[4], wantState: "success", descPrefix: true, wantDesc: "-3 nodes"},
		{name: "--repo-url overrides origin", serverCode: http.StatusCreated, base: 0, head: 1, wantCode: 1,
			args:     []string{"--repo-url", "https://gitea.example.com/other/fleet2"},
			wantPath: "/api/v1/repos/other/fleet2/statuses/" + ids[1], wantState: "success", descPrefix: true, wantDesc: "+1 node cern-003"},
		{name: "rejected post: exit 2, reason, no token", serverCode: http.StatusForbidden, base: 0, head: 1, wantCode: 2,
			wantPath: "/api/v1/repos/fleet-org/fleet/statuses/" + ids[1], wantState: "success", descPrefix: true, wantDesc: "+1 node cern-003",
			wantStderr: "post atoll/plan status on " + ids[1][:7] + ": "},
		{name: "server down: exit 2", serverCode: -1, base: 0, head: 1, wantCode: 2,
			wantStderr: "post atoll/plan status on " + ids[1][:7] + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeGitea(t, tt.serverCode)
			if tt.serverCode < 0 {
				srv.Close()
			}
			args := []string{"plan", "--repo", repo, "--path", "fleet", "--post-status",
				"--status-provider", "gitea", "--status-url", srv.URL + "/api/v1", "--status-token-file", tokenFile, "--status-timeout", "5s"}
			args = append(append(args, tt.args...), ids[tt.base], ids[tt.head])
			code, stdout, stderr := runAtoll(t, args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if strings.Contains(stdout+stderr, testStatusToken) {
				t.Errorf("output leaks the token:\n%s%s", stdout, stderr)
			}
			if tt.serverCode < 0 {
				return
			}
			got := srv.requests()
			if len(got) != 1 {
				t.Fatalf("got %d status requests, want 1: %+v", len(got), got)
			}
			r := got[0]
			if r.Method != http.MethodPost || r.Path != tt.wantPath {
				t.Errorf("request %s %s, want POST %s", r.Method, r.Path, tt.wantPath)
			}
			if r.Authorization != "token "+testStatusToken {
				t.Errorf("Authorization %q, want the token from the file", r.Authorization)
			}
			if r.Body["context"] != "atoll/plan" || r.Body["state"] != tt.wantState {
				t.Errorf("context %q state %q, want atoll/plan %s", r.Body["context"], r.Body["state"], tt.wantState)
			}
			desc := r.Body["description"]
			if tt.descPrefix && !strings.HasPrefix(desc, tt.wantDesc) || !tt.descPrefix && desc != tt.wantDesc {
				t.Errorf("description %q, want %q (prefix: %v)", desc, tt.wantDesc, tt.descPrefix)
			}
			if strings.HasPrefix(tt.wantDesc, "invalid fleet") && !strings.HasSuffix(desc, "(and 3 more)") {
				t.Errorf("failure description %q does not count the other problems", desc)
			}
		})
	}
}

func TestPlanPostStatusUsage(t *testing.T) {
	noOrigin, _ := gitRepo(t, []struct{ message, tree string }{{"Add the first clusters", "testdata/fleet-base"}})
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "needs --repo", args: []string{"plan", "--post-status", "testdata/fleet-base", "testdata/fleet-head"}, wantStderr: "--post-status needs --repo"},
		{name: "no origin and no --repo-url", args: []string{"plan", "--post-status", "--status-provider", "gitea", "--repo", noOrigin, "HEAD", "HEAD"},
			wantStderr: "find the repository URL for --post-status (set --repo-url)"},
		{name: "empty token file", args: []string{"plan", "--post-status", "--status-provider", "gitea", "--repo", ".", "--repo-url", "https://h/o/r", "--status-token-file", os.DevNull, "HEAD", "HEAD"},
			wantStderr: "status token file " + os.DevNull + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runAtoll(t, tt.args...)
			if code != planExitError {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, planExitError, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
		})
	}
}
