// Package bench measures Atoll on the local test bed and reports each figure
// against its target, as a table and as JSON (test/bench/out/results.json).
//
// Every speed figure that depends on the machine is reported as a ratio
// against a baseline measured in the same run (the same pods created
// directly in the remote), so a noisy 2-core machine still gives a
// meaningful number. Nothing here runs in `make test`: the whole run is
// BenchmarkAtoll, started by `make bench`:
//
//	make bench                                 # 2,000 pods, 10,000 for the footprint
//	make bench BENCH_ARGS='-pods 5000 -idle-nodes 100'
//	go test -run '^$' -bench Plan1000 ./test/bench   # the plan figure alone
//
// What one run does, in order, against one bed (a master and two kwok
// remotes) and a real git http-backend:
//
//  1. reconcile scale: render + validate + plan of a generated 1,000-cluster
//     fleet through kustomize, in process;
//  2. footprint of `atoll run` with many idle virtual nodes;
//  3. with a fresh `atoll run`: commit pushed -> virtual node Ready through
//     the push webhook, then webhooks for an unchanged head (objects fetched);
//  4. delegation vs direct: N pods created directly in a remote (baseline),
//     then N pods bound to the virtual node in the master;
//  5. status-sync latency: remote pod status changes at a fixed rate, timed
//     from the remote watch to the master watch and by Atoll's histogram;
//  6. footprint of the same process with 10,000 delegated pods.
//
// results.go holds the figures and their targets, quantile.go the
// percentiles, proc.go what a process costs, fleet.go the generated fleet.
package bench
