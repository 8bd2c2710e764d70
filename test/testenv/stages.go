package testenv

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

// stageFiles are the bed's own kwok stages, added to those taken from the
// kwok module (see the comment at the top of each file).
//
//go:embed stages/*.yaml
var stageFiles embed.FS

// bedStages writes the bed's own stages under dir and returns their paths.
func bedStages(dir string) ([]string, error) {
	entries, err := stageFiles.ReadDir("stages")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "stages")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		data, err := stageFiles.ReadFile("stages/" + e.Name())
		if err != nil {
			return nil, err
		}
		p := filepath.Join(out, e.Name())
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, fmt.Errorf("write stage %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
