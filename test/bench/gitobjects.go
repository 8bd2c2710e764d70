package bench

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CountGitObjects counts the git objects stored under dir, in every
// repository below it: loose objects (objects/xx/…) plus the object count
// of every pack index (objects/pack/*.idx). The difference of two counts is
// what a fetch between them brought in.
func CountGitObjects(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parent := filepath.Base(filepath.Dir(path))
		grand := filepath.Base(filepath.Dir(filepath.Dir(path)))
		switch {
		case grand == "objects" && len(parent) == 2 && isHex(parent) && len(d.Name()) >= 38 && isHex(d.Name()):
			n++
		case parent == "pack" && grand == "objects" && strings.HasSuffix(d.Name(), ".idx"):
			c, err := packIndexCount(path)
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count git objects in %s: %w", dir, err)
	}
	return n, nil
}

// packIndexCount reads the object count of a version 2 pack index: after
// the magic and the version come 256 cumulative fan-out counts, the last of
// which is the number of objects.
func packIndexCount(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var head [8 + 256*4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	if string(head[:4]) != "\xfftOc" || binary.BigEndian.Uint32(head[4:8]) != 2 {
		return 0, fmt.Errorf("%s: not a version 2 pack index", path)
	}
	return int(binary.BigEndian.Uint32(head[len(head)-4:])), nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
