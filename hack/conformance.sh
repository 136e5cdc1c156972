#!/usr/bin/env bash
# `make conformance`: the upstream [Conformance] tests of the pinned Kubernetes release
# against a tenant cluster (a ServerlessCluster of an embedded sk8s).
#   1. builds e2e.test, ginkgo, agnhost (hack/build-conformance.sh, cached per version);
#   2. makes the tests' images available locally (hack/build-conformance-images.sh);
#   3. starts an embedded sk8s in its own home (or uses CONFORMANCE_KUBECONFIG), creates a
#      ServerlessCluster and waits for it;
#   4. runs e2e.test under `ginkgo -p` with 3 processes, nice'd (the machine is shared);
#   5. writes junit + a JSON report and prints a summary table (hack/conformance_summary.py).
# Variables:
#   CONFORMANCE_FOCUS       regex of the tests to run (default '\[Conformance\]')
#   CONFORMANCE_SKIP        regex of tests to skip (default: hack/conformance-skip.txt)
#   CONFORMANCE_PROCS       ginkgo processes (default 3; never more than 3 on this machine)
#   CONFORMANCE_REPORT_DIR  where junit/JSON/summary go (default _output/conformance/<time>)
#   CONFORMANCE_KUBECONFIG  run against this tenant kubeconfig instead of creating a cluster
#   CONFORMANCE_TIMEOUT     ginkgo's suite timeout (default 8h)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
PY="$REPO/.venv/bin/python"
FOCUS="${CONFORMANCE_FOCUS:-\[Conformance\]}"
PROCS="${CONFORMANCE_PROCS:-3}"
[ "$PROCS" -le 3 ] || PROCS=3
REPORT_DIR="${CONFORMANCE_REPORT_DIR:-$REPO/_output/conformance/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$REPORT_DIR"
REPORT_DIR="$(cd "$REPORT_DIR" && pwd)"
# The skip list: one regex a line, each with the reason in a comment above it.
SKIP="${CONFORMANCE_SKIP-$({ grep -vE '^\s*(#|$)' "$HERE/conformance-skip.txt" || true; } | paste -sd'|' -)}"
log() { printf '[conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

TOOLS=$(bash "$HERE/build-conformance.sh" | tail -1)
BIN=$(bash "$HERE/build-components.sh" | tail -1)
KUBECTL="$BIN/kubectl"

started_home=""
cleanup() {
  if [ -n "$started_home" ]; then
    log "stopping the embedded sk8s of $started_home"
    SK8S_HOME="$started_home" "$PY" -m operators.cli down >/dev/null 2>&1 || true
    cp -r "$started_home/logs" "$REPORT_DIR/sk8s-logs" 2>/dev/null || true
    rm -rf "$started_home"
  fi
}
trap cleanup EXIT

if [ -n "${CONFORMANCE_KUBECONFIG:-}" ]; then
  TENANT_KUBECONFIG="$CONFORMANCE_KUBECONFIG"
  bash "$HERE/build-conformance-images.sh" "$TOOLS"
else
  # A short path of its own: the home holds unix sockets (108-byte limit on their paths).
  export SK8S_HOME="$(mktemp -d /tmp/sk8s-conformance-XXXXXX)"
  export CONTAINERS_CONF="$SK8S_HOME/containers.conf"
  unset KUBECONFIG
  log "starting an embedded sk8s in $SK8S_HOME"
  started_home="$SK8S_HOME"
  (cd "$REPO" && "$PY" -m operators.cli up)
  bash "$HERE/build-conformance-images.sh" "$TOOLS"
  meta=(--kubeconfig="$SK8S_HOME/kubeconfig")
  name="${CONFORMANCE_CLUSTER:-conformance}"
  # Two virtual nodes (kube-scheduler then places the pods): several tests need at least 2.
  log "creating ServerlessCluster $name"
  "$KUBECTL" "${meta[@]}" apply -f - <<YAML
apiVersion: sk8s.io/v1alpha1
kind: ServerlessCluster
metadata: {name: $name, namespace: default}
spec: {virtualNodes: ${CONFORMANCE_NODES:-2}}
YAML
  "$KUBECTL" "${meta[@]}" wait --for=condition=Ready "serverlesscluster/$name" -n default --timeout=300s
  TENANT_KUBECONFIG="$REPORT_DIR/tenant.kubeconfig"
  "$KUBECTL" "${meta[@]}" get secret "$name-kubeconfig" -n default -o jsonpath='{.data.kubeconfig}' \
    | base64 -d > "$TENANT_KUBECONFIG"
fi
log "tenant nodes:"
"$KUBECTL" --kubeconfig="$TENANT_KUBECONFIG" get nodes -o wide >&2 || true

log "running e2e.test: focus '$FOCUS', $PROCS processes, reports in $REPORT_DIR"
cd "$REPORT_DIR"
set +e
# The e2e flags: --kubectl-path because the kubectl on PATH may be another vendor's; a
# short --node-schedulable-timeout so that a node that never becomes schedulable fails the
# suite in minutes, not after the default 30.
nice -n 19 "$TOOLS/ginkgo" --procs="$PROCS" --timeout="${CONFORMANCE_TIMEOUT:-8h}" \
  --focus="$FOCUS" ${SKIP:+--skip="$SKIP"} \
  --junit-report=junit.xml --json-report=report.json --output-dir="$REPORT_DIR" \
  --no-color --succinct \
  "$TOOLS/e2e.test" -- \
  --kubeconfig="$TENANT_KUBECONFIG" --kubectl-path="$KUBECTL" --provider=skeleton \
  --report-dir="$REPORT_DIR" --node-schedulable-timeout=3m --disable-log-dump \
  > "$REPORT_DIR/e2e.log" 2>&1
rc=$?
set -e
log "ginkgo exited $rc (log: $REPORT_DIR/e2e.log)"
"$PY" "$HERE/conformance_summary.py" "$REPORT_DIR/report.json" --skip="$SKIP" \
  --version="$(cat "$TOOLS/version" 2>/dev/null || echo "${K8S_VERSION:-v1.37.2}")" | tee "$REPORT_DIR/summary.md"
exit "$rc"
