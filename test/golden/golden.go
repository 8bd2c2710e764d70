// Package golden compares a test's output with an expected file, and
// rewrites the file instead when the test binary runs with -update:
//
//	golden.Check(t, filepath.Join("testdata", "plan_expected.txt"), got)
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected (golden) files from the current output")

// Check fails t when got differs from the content of path; with -update it
// first writes got to path.
func Check(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}
