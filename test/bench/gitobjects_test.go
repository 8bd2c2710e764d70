package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCountGitObjects compares the count with git's own, loose and packed.
func TestCountGitObjects(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@example.com",
			"GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	gitCount := func() int {
		t.Helper()
		n := 0
		for _, line := range strings.Split(git("count-objects", "-v"), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			if k == "count" || k == "in-pack" {
				c, err := strconv.Atoi(v)
				if err != nil {
					t.Fatal(err)
				}
				n += c
			}
		}
		return n
	}
	git("init", "-q")
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "-A")
		git("commit", "-q", "-m", "c"+strconv.Itoa(i))
	}
	check := func(when string) {
		t.Helper()
		got, err := CountGitObjects(dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := gitCount(); got != want || got == 0 {
			t.Errorf("%s: CountGitObjects = %d, git count-objects says %d", when, got, want)
		}
	}
	check("loose")
	git("repack", "-q", "-a", "-d")
	check("packed")
	if err := os.WriteFile(filepath.Join(dir, "late"), []byte("late"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "late")
	check("packed and loose")
}
