package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-dev/atoll/test/golden"
)

// run executes the atoll command in-process and returns its exit code
// (as main computes it), stdout and stderr.
func runAtoll(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := newRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = exitCode(err)
		stderr.WriteString("atoll: " + err.Error() + "\n") // as main does
	}
	return code, stdout.String(), stderr.String()
}

func TestValidateCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		golden     string // stderr golden file
		wantStderr string // substring
	}{
		{name: "valid fleet", args: []string{"validate", "testdata/fleet-head"}, wantStdout: "testdata/fleet-head is valid: 3 clusters, 1 placement policy"},
		{name: "example prod overlay in git mode", args: []string{"validate", "../../examples/fleet/overlays/prod"}, wantStdout: "is valid: 2 clusters, 2 placement policies"},
		{name: "example dev overlay in watch mode", args: []string{"validate", "--mode", "watch", "../../examples/fleet/overlays/dev"}, wantStdout: "is valid: 2 clusters"},
		{name: "example dev overlay in git mode", args: []string{"validate", "../../examples/fleet/overlays/dev"}, wantCode: 1,
			wantStderr: "examples/fleet/base/clusters/remote-1.yaml:9: spec.credentials.path: a kubeconfig path is allowed in watch mode only"},
		{name: "every error as file:line", args: []string{"validate", "--root", "testdata/fleet-invalid", "testdata/fleet-invalid"}, wantCode: 1, golden: "validate_invalid_expected.txt"},
		{name: "bad mode", args: []string{"validate", "--mode", "svn", "testdata/fleet-head"}, wantCode: 1, wantStderr: `unsupported --mode "svn"`},
		{name: "missing directory", args: []string{"validate", "testdata/nope"}, wantCode: 1, wantStderr: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runAtoll(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if tt.golden != "" {
				golden.Check(t, filepath.Join("testdata", tt.golden), stderr)
			}
		})
	}
}

func TestPlanCommandDirectories(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		golden     string // stdout golden file
		wantStderr string
	}{
		{name: "changes", args: []string{"plan", "testdata/fleet-base", "testdata/fleet-head"}, wantCode: 1, golden: "plan_dirs_expected.txt",
			wantStderr: "atoll: plan: +1 node cern-003 · -1 node old-1 · label changed on gke-001 · taint changed on gke-001 · capacity changed on cern-001 · cordon changed on c…\n"},
		{name: "no changes", args: []string{"plan", "testdata/fleet-head", "testdata/fleet-head"}, golden: "plan_nochange_expected.txt"},
		{name: "with --path under two roots", args: []string{"plan", "--path", "fleet-head", "testdata", "testdata"}, golden: "plan_nochange_expected.txt"},
		{name: "example overlays, dev to prod", args: []string{"plan", "--mode", "watch", "../../examples/fleet/overlays/dev", "../../examples/fleet/overlays/prod"}, wantCode: 1, golden: "plan_examples_expected.txt"},
		{name: "invalid side", args: []string{"plan", "testdata/fleet-base", "testdata/fleet-invalid"}, wantCode: 2,
			wantStderr: "head: cmd/atoll/testdata/fleet-invalid/cern.yaml:9: spec.node.taints[0].effect: unsupported value \"Nope\""},
		{name: "one argument", args: []string{"plan", "testdata/fleet-base"}, wantCode: 2, wantStderr: "plan needs BASE and HEAD, got 1 arguments"},
		{name: "missing directory", args: []string{"plan", "testdata/fleet-base", "testdata/nope"}, wantCode: 2, wantStderr: "head:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runAtoll(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if tt.golden != "" {
				golden.Check(t, filepath.Join("testdata", tt.golden), stdout)
			}
		})
	}
}

// gitRepo makes a repository whose commits are the given trees, in order,
// and returns its directory and the commit ids.
func gitRepo(t *testing.T, commits []struct{ message, tree string }) (string, []string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	var ids []string
	for _, c := range commits {
		git("rm", "-r", "-q", "--ignore-unmatch", "fleet")
		if c.tree != "" {
			if err := os.CopyFS(filepath.Join(dir, "fleet"), os.DirFS(c.tree)); err != nil {
				t.Fatal(err)
			}
		}
		git("add", "-A")
		git("commit", "-q", "--allow-empty", "-m", c.message)
		ids = append(ids, git("rev-parse", "HEAD"))
	}
	return dir, ids
}

func TestPlanCommandRepo(t *testing.T) {
	repo, ids := gitRepo(t, []struct{ message, tree string }{
		{"Add the first clusters", "testdata/fleet-base"},
		{"Add cern-003, a GPU policy; retire old-1", "testdata/fleet-head"},
		{"Remove everything", ""},
		{"Remove everything, on purpose\n\nAtoll-Allow-Removal: 3", ""},
	})
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		golden     string
		wantStderr string
	}{
		{name: "two commits", args: []string{"plan", "--repo", repo, "--path", "fleet", ids[0], ids[1]}, wantCode: 1, golden: "plan_dirs_expected.txt"},
		{name: "branch names work too", args: []string{"plan", "--repo", repo, "--path", "fleet", "main~3", "main~2"}, wantCode: 1, golden: "plan_dirs_expected.txt"},
		{name: "same commit", args: []string{"plan", "--repo", repo, "--path", "fleet", ids[1], ids[1]}, golden: "plan_nochange_expected.txt"},
		{name: "breaker refuses", args: []string{"plan", "--repo", repo, "--path", "fleet", ids[1], ids[2]}, wantCode: 3, golden: "plan_repo_breaker_expected.txt"},
		{name: "trailer allows", args: []string{"plan", "--repo", repo, "--path", "fleet", ids[1], ids[3]}, wantCode: 1, golden: "plan_repo_allowed_expected.txt"},
		{name: "unknown revision", args: []string{"plan", "--repo", repo, ids[0], "nope"}, wantCode: 2, wantStderr: `resolve revision "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runAtoll(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if tt.golden != "" {
				golden.Check(t, filepath.Join("testdata", tt.golden), stdout)
			}
		})
	}
}

// TestPlanRepoRefusesCraftedTree: a tree can hold a symbolic link and a
// directory of the same name; written in order, the link first, a file in
// the directory lands wherever the link points. `atoll plan --repo` must
// refuse the revision and write nothing outside its checkout.
func TestPlanRepoRefusesCraftedTree(t *testing.T) {
	repo, ids := gitRepo(t, []struct{ message, tree string }{{"Add the first clusters", "testdata/fleet-base"}})
	outside := t.TempDir()
	git := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	target := git(outside, "hash-object", "-w", "--stdin")
	evil := git("owned\n", "hash-object", "-w", "--stdin")
	sub := git("100644 blob "+evil+"\tevil.yaml\n", "mktree")
	fleet := git("", "rev-parse", ids[0]+":fleet")
	tree := git("040000 tree "+fleet+"\tfleet\n120000 blob "+target+"\tl\n040000 tree "+sub+"\tl\n", "mktree")
	head := git("", "commit-tree", tree, "-p", ids[0], "-m", "Crafted")

	code, _, stderr := runAtoll(t, "plan", "--repo", repo, "--path", "fleet", ids[0], head)
	if code != planExitError {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, planExitError, stderr)
	}
	if !strings.Contains(stderr, "symlink l -> "+outside) {
		t.Errorf("stderr %q does not name the link", stderr)
	}
	if entries, err := os.ReadDir(outside); err != nil || len(entries) > 0 {
		t.Errorf("the checkout wrote outside itself: %v %v", entries, err)
	}
}
