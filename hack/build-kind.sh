#!/usr/bin/env bash
# kind (sigs.k8s.io/kind) built from its Go module at a pinned version (no release binary
# is downloaded) and cached: ~/.cache/sk8s/bin/kind-<version>/kind. Prints the binary's
# path; a second run returns at once. Runs with podman: KIND_EXPERIMENTAL_PROVIDER=podman
# (hack/kind.sh sets it).
set -euo pipefail
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CACHE="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
OUT="$CACHE/bin/kind-$KIND_VERSION"
if [ -x "$OUT/kind" ]; then echo "$OUT/kind"; exit 0; fi
command -v go >/dev/null || { echo "build-kind: go is not installed" >&2; exit 1; }
mkdir -p "$OUT"
exec 9>"$CACHE/build.lock"   # one Go build at a time (hack/build-components.sh's lock)
flock 9
[ -x "$OUT/kind" ] && { echo "$OUT/kind"; exit 0; }
t0=$(date +%s)
GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 GOBIN="$OUT" \
  go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION" >&2
echo "[build-kind] built kind $KIND_VERSION in $(( $(date +%s) - t0 ))s" >&2
echo "$OUT/kind"
