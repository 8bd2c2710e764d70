package reconcile

import (
	"errors"
	"time"
)

// Default render limits. A fleet repository holds YAML for clusters and
// policies; these leave two orders of magnitude of headroom.
const (
	DefaultMaxFiles             = 10000
	DefaultMaxBytes       int64 = 64 << 20
	DefaultMaxFileBytes   int64 = 8 << 20
	DefaultRenderTime           = 30 * time.Second
	DefaultMaxMemoryBytes int64 = 1 << 30
	DefaultMaxClusters          = 10000
)

// ErrLimitExceeded is matched (errors.Is) when a render reads too many
// files or bytes, or takes too long.
var ErrLimitExceeded = errors.New("render limit exceeded")

// ErrOutsideRoot is matched when the fleet path, a kustomize reference or
// a symbolic link leaves the repository root.
var ErrOutsideRoot = errors.New("outside the repository root")

// ErrRemoteRefused is matched when a kustomization refers to a remote
// resource or base (URL, git repository).
var ErrRemoteRefused = errors.New("remote resources are refused")

// Limits bound one render. Zero fields take the defaults.
type Limits struct {
	// MaxFiles bounds the number of files read.
	MaxFiles int
	// MaxBytes bounds the total size of the files read.
	MaxBytes int64
	// MaxFileBytes bounds the size of any one file.
	MaxFileBytes int64
	// Timeout bounds the render's wall time.
	Timeout time.Duration
	// MaxMemoryBytes bounds the memory of a kustomize build's process.
	MaxMemoryBytes int64
	// MaxClusters bounds the Clusters one revision declares (checked by
	// Decode): each is a virtual node with its own clients and watches.
	MaxClusters int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultRenderTime
	}
	if l.MaxMemoryBytes <= 0 {
		l.MaxMemoryBytes = DefaultMaxMemoryBytes
	}
	if l.MaxClusters <= 0 {
		l.MaxClusters = DefaultMaxClusters
	}
	return l
}
