#!/usr/bin/env bash
# make demo: the local test bed (master + 2 remotes) with `atoll watch` on a
# copy of examples/fleet. State lives in .demo/ (git-ignored). Ctrl-C stops
# everything this script started.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
STATE=.demo
start=$(date +%s)

echo "==> building atoll and the test bed's binaries (cached after the first time)"
$GO build -o bin/atoll ./cmd/atoll
$GO build -o bin/atoll-env ./test/env
bin/atoll-env build --gitea=false   # the demo needs no Gitea

watch_pid=""
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "==> stopping"
	if [ -n "$watch_pid" ]; then kill -INT "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; fi
	bin/atoll-env down --dir "$STATE" >/dev/null 2>&1 || true
	echo "==> stopped"
}
trap cleanup INT TERM EXIT

# A bed left by an interrupted run is stopped first.
bin/atoll-env down --dir "$STATE" >/dev/null 2>&1 || true
echo "==> starting the test bed in $STATE (master + 2 remotes)"
bin/atoll-env up --dir "$STATE" --remotes 2 --nodes-per-remote 2 >"$STATE.up.log" 2>&1 || { cat "$STATE.up.log"; exit 1; }
mkdir -p "$STATE" && mv "$STATE.up.log" "$STATE/up.log"

rm -rf "$STATE/fleet"
cp -R examples/fleet "$STATE/fleet"

kc="$PWD/$STATE/master.kubeconfig"
cat <<MSG

==> test bed up in $(( $(date +%s) - start ))s. Atoll now watches $STATE/fleet/overlays/dev.
    In another terminal:

      export KUBECONFIG=$kc
      kubectl get nodes -L atoll.dev/cluster          # remote-1 and remote-2 are virtual nodes
      kubectl label namespace default example.atoll.dev/delegate=true   # opt in (policies/delegate.yaml)
      kubectl apply -f examples/workloads/            # an unchanged Deployment and Job
      kubectl get pods -o wide                        # placed on the virtual nodes
      kubectl logs POD; kubectl exec POD -- echo hi   # through the master, as for any pod
      bin/atoll status                                # per cluster: Ready, pods, revision, error

    Then edit the fleet and watch it apply here, e.g. add a taint to remote-2:

      \$EDITOR $STATE/fleet/base/clusters/remote-2.yaml
        spec.node.taints: [{key: demo, value: "yes", effect: NoSchedule}]
      kubectl get node remote-2 -o jsonpath='{.spec.taints}'

    Delete $STATE/fleet/base/clusters/remote-2.yaml (and its line in
    base/kustomization.yaml) to watch the node drain and go.
    Ctrl-C stops Atoll and the test bed.

MSG

# The kubelet API is served with the bed master's certificates, so `kubectl
# logs/exec/port-forward` work through the master, authenticated both ways.
# The admission webhook adds the tolerations of policies' tolerateIn; the
# bed's API server reaches it on the loopback address.
bin/atoll watch --kubeconfig "$kc" --root "$STATE/fleet" --dir "$STATE/fleet/overlays/dev" --drain-timeout 1m \
	--admission-addr 127.0.0.1:9443 --admission-url https://127.0.0.1:9443 \
	--node-ip 127.0.0.1 --kubelet-port 10250 --kubelet-client-ca-file "$STATE/master/pki/ca.crt" \
	--kubelet-tls-cert-file "$STATE/master/pki/kubelet-serving.crt" --kubelet-tls-key-file "$STATE/master/pki/kubelet-serving.key" &
watch_pid=$!
wait "$watch_pid" || true
watch_pid=""
