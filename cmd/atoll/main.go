// Command atoll runs many Kubernetes clusters as one: each remote cluster
// appears in a master cluster as a virtual node, declared in a git repository.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "atoll:", err)
		os.Exit(exitCode(err))
	}
}
