// Command env builds and runs Atoll's local multi-cluster test bed.
//
//	go run ./test/env build                      # build and cache the binaries (and Gitea)
//	go run ./test/env up --dir D --remotes 2     # start master + 2 remotes
//	go run ./test/env status --dir D             # what runs
//	go run ./test/env down --dir D               # stop it and remove its data
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/atoll-dev/atoll/test/testenv"
)

const usage = `usage: env build [--gitea=false]
       env up --dir DIR [--remotes N] [--nodes-per-remote K] [--node-cpu C] [--node-memory M] [--node-pods P]
       env status --dir DIR
       env down --dir DIR
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "env:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding the bed's state")
	var opts testenv.Options
	fs.IntVar(&opts.Remotes, "remotes", 2, "number of remote clusters")
	fs.IntVar(&opts.NodesPerRemote, "nodes-per-remote", 3, "kwok nodes in each remote")
	fs.StringVar(&opts.Node.CPU, "node-cpu", "32", "cpu capacity of each kwok node")
	fs.StringVar(&opts.Node.Memory, "node-memory", "256Gi", "memory capacity of each kwok node")
	fs.IntVar(&opts.Node.Pods, "node-pods", 110, "pod capacity of each kwok node")
	gitea := fs.Bool("gitea", true, "build: also build Gitea (only the commit-status tests need it)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	needDir := func() error {
		if *dir == "" {
			return fmt.Errorf("%s needs --dir", args[0])
		}
		return nil
	}
	switch args[0] {
	case "build":
		if _, err := testenv.Build(ctx, os.Stdout); err != nil || !*gitea {
			return err
		}
		_, err := testenv.BuildGitea(ctx, os.Stdout)
		return err
	case "up":
		if err := needDir(); err != nil {
			return err
		}
		opts.Dir, opts.Log = *dir, os.Stdout
		env, err := testenv.Up(ctx, opts)
		if err != nil {
			return err
		}
		for _, c := range env.Clusters() {
			fmt.Printf("%-10s %s  kubeconfig %s\n", c.Name, c.Server, c.Kubeconfig)
		}
		return nil
	case "status":
		if err := needDir(); err != nil {
			return err
		}
		procs, err := testenv.Status(*dir)
		if err != nil {
			return err
		}
		for _, p := range procs {
			state := "stopped"
			if p.Running() {
				state = "running"
			}
			fmt.Printf("%-32s pid %-8d %s\n", p.Name, p.Pid, state)
		}
		return nil
	case "down":
		if err := needDir(); err != nil {
			return err
		}
		procs, err := testenv.Down(ctx, *dir)
		fmt.Printf("stopped %d processes\n", len(procs))
		return err
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
