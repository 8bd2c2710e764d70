package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCheckNoGoPlugins(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		wantErr   bool
	}{
		{"plain", "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(0) }\n", false},
		{"plugin", "package main\n\nimport \"plugin\"\n\nfunc main() { _, _ = plugin.Open(\"x.so\") }\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.test/p\n\ngo 1.26\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(dir, "p")
			cmd := exec.Command("go", "build", "-o", bin, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			err := checkNoGoPlugins(bin)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkNoGoPlugins = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}
