package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ContainerLogLines are the lines every container in a remote logs: kwok
// serves them (CRI log format) for logs and attach, and follows the file, so
// a test can append with AppendContainerLog and see the new line arrive.
var ContainerLogLines = []string{"atoll log line 1", "atoll log line 2", "atoll log line 3", "atoll log line 4", "atoll log line 5"}

// debuggingConfig writes the kwok configuration that makes containers in a
// remote answer the kubelet's debugging calls as real ones would: logs and
// attach from a file, exec runs the command on this machine (in a scratch
// directory), port-forward connects each port to `cat`, which echoes.
func (c *Cluster) debuggingConfig() (string, error) {
	dir := filepath.Join(c.dir, "kwok")
	if err := os.MkdirAll(filepath.Join(dir, "exec"), 0o755); err != nil {
		return "", err
	}
	c.containerLog = filepath.Join(dir, "containers.log")
	var b strings.Builder
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, l := range ContainerLogLines {
		fmt.Fprintf(&b, "%s stdout F %s\n", ts.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), l)
	}
	if err := os.WriteFile(c.containerLog, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	config := filepath.Join(dir, "debugging.yaml")
	data := fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: containers
spec:
  logs:
  - logsFile: %[1]q
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterAttach
metadata:
  name: containers
spec:
  attaches:
  - logsFile: %[1]q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: containers
spec:
  execs:
  - local:
      workDir: %[2]q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: containers
spec:
  forwards:
  - command: ["cat"]
`, c.containerLog, filepath.Join(dir, "exec"))
	if err := os.WriteFile(config, []byte(data), 0o644); err != nil {
		return "", err
	}
	return config, nil
}

// AppendContainerLog adds a line to what every container of the remote logs.
func (c *Cluster) AppendContainerLog(line string) error {
	f, err := os.OpenFile(c.containerLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
