package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles creates files (slash-separated names) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// errorLines splits an ErrorList into its lines; any other error fails.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not an ErrorList: %v", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("ErrorList does not match ErrInvalid")
	}
	return strings.Split(list.Error(), "\n")
}

func loadDir(t *testing.T, files map[string]string, mode Mode) ([]NodeSpec, error) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	_, nodes, err := Load(context.Background(), dir, ".", WithMode(mode))
	return nodes, err
}

const clusterA = `apiVersion: atoll.dev/v1alpha1
kind: Cluster
metadata:
  name: a
  labels: {gpu: "true", region: eu}
spec:
  credentials:
    secretRef: {name: a-kubeconfig}
`
