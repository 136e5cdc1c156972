#!/usr/bin/env bash
# Builds the real control-plane binaries from upstream Go modules at pinned versions
# and caches them per machine, keyed by version. A second run returns in seconds.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes
#   etcd                                                              <- go.etcd.io/etcd/server/v3
# K8S_COMPONENTS (names under k8s.io/kubernetes/cmd), WITH_ETCD=0 and COMPONENTS_DIR (a name
# under bin/ and build/) build another set in a cache of its own: hack/build-kind-components.sh
# (kubelet, kubeadm, kube-proxy). The defaults are the control plane's set and cache key.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"   # the etcd that this Kubernetes release pins
CACHE="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
read -r -a COMPONENTS <<< "${K8S_COMPONENTS:-kube-apiserver kube-controller-manager kube-scheduler kubectl}"
WITH_ETCD="${WITH_ETCD:-1}"
DIR="${COMPONENTS_DIR:-k8s-$K8S_VERSION-etcd-$ETCD_VERSION}"
OUT="$CACHE/bin/$DIR"

log() { printf '[build-components %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

all_present() {
  for c in "${COMPONENTS[@]}"; do [ -x "$OUT/$c" ] || return 1; done
  [ "$WITH_ETCD" = 0 ] || [ -x "$OUT/etcd" ]
}

if all_present; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || die "go is not installed (need Go >= 1.26)"
mkdir -p "$OUT"
# One build at a time per cache (make setup and a test both asking at once): the second
# waits for the first, then finds the binaries built.
exec 9>"$CACHE/build.lock"
flock 9
if all_present; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi
WORK="$CACHE/build"
K8S_WORK="$WORK/${COMPONENTS_DIR:-k8s}"
mkdir -p "$K8S_WORK" "$WORK/etcd"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0
start=$(date +%s)

# --- Kubernetes ---------------------------------------------------------------
build_k8s() {
  cd "$K8S_WORK"
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  modjson=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || die "go mod download k8s.io/kubernetes@$K8S_VERSION failed"
  gomod=$(printf '%s' "$modjson" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"
  # k8s.io/kubernetes points its staging modules at ./staging, which is not part of the
  # module zip: replace each with its published version of the same release.
  staging_ver="v0${K8S_VERSION#v1}"
  {
    echo "module sk8s.local/components"
    echo
    echo "go 1.26.0"
    echo
    echo "godebug default=go1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" \
      | awk -v v="$staging_ver" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${COMPONENTS[@]}"
    printf ')\n'
  } > tools.go
  log "go mod tidy (downloads modules on the first run)"
  go mod tidy >tidy.log 2>&1 || { tail -30 tidy.log >&2; die "go mod tidy for Kubernetes failed (log: $K8S_WORK/tidy.log)"; }
  for c in "${COMPONENTS[@]}"; do
    [ -x "$OUT/$c" ] && continue
    log "building $c $K8S_VERSION (the first build takes several minutes on 2 cores)"
    t0=$(date +%s)
    go build -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
      -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitTreeState=clean" \
      -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c" >"build-$c.log" 2>&1 \
      || { tail -30 "build-$c.log" >&2; die "building $c failed (log: $K8S_WORK/build-$c.log)"; }
    mv "$OUT/$c.tmp" "$OUT/$c"
    log "built $c in $(( $(date +%s) - t0 ))s ($(du -h "$OUT/$c" | cut -f1))"
  done
}

# --- etcd -------------------------------------------------------------------------
build_etcd() {
  [ -x "$OUT/etcd" ] && return 0
  cd "$WORK/etcd"
  cat > go.mod <<GOMOD
module sk8s.local/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > main.go <<'GO'
// A tiny main around upstream etcd's own entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "go mod tidy for etcd $ETCD_VERSION"
  go mod tidy >tidy.log 2>&1 || { tail -30 tidy.log >&2; die "go mod tidy for etcd failed (log: $WORK/etcd/tidy.log)"; }
  log "building etcd $ETCD_VERSION"
  t0=$(date +%s)
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" . >build.log 2>&1 \
    || { tail -30 build.log >&2; die "building etcd failed (log: $WORK/etcd/build.log)"; }
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  log "built etcd in $(( $(date +%s) - t0 ))s ($(du -h "$OUT/etcd" | cut -f1))"
}

[ "$WITH_ETCD" = 0 ] || build_etcd
build_k8s
all_present || die "some components are missing in $OUT"
log "all components ready in $OUT after $(( $(date +%s) - start ))s"
echo "$OUT"
