// Package fleettest is what the end-to-end suites and the benchmarks share
// to drive Atoll on the local test bed: an `atoll` process with the bed's
// kubelet API certificates, a master namespace per test, kubeconfig Secrets
// for the remotes, Cluster declarations, the push webhook, and waits on
// virtual nodes.
//
//	bin, _ := testenv.BuildAtoll(ctx, dir)
//	ns := fleettest.Namespace(t, master, "atoll-git")
//	fleettest.KubeconfigSecrets(t, master, ns, env.Remotes)
//	fleettest.CleanNodes(t, master)
//	p := fleettest.StartAtoll(t, env, bin, "run-git", "run", "--repo", url, "--namespace", ns)
//	testenv.WaitFor(t, time.Minute, "remote-1 Ready", func(ctx context.Context) (bool, error) {
//		return fleettest.NodeReady(ctx, master, "remote-1")
//	})
package fleettest
