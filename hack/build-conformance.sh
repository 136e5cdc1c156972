#!/usr/bin/env bash
# Builds the upstream conformance tooling at the pinned Kubernetes version, offline from the
# Go module cache (plus the Go module proxy as configured), and caches it per version:
#   e2e.test  <- go test -c k8s.io/kubernetes/test/e2e
#   ginkgo    <- github.com/onsi/ginkgo/v2/ginkgo at the version k8s.io/kubernetes pins
#                (resolved in the same module graph as e2e.test, so CLI and library agree)
#   agnhost   <- k8s.io/kubernetes/test/images/agnhost (the version of the release's manifest)
#   sample-apiserver <- k8s.io/sample-apiserver of the release (the aggregator tests' image)
# Same version pins and go.mod/replace approach as hack/build-components.sh. Every compile
# runs under `nice -n 19`: the machine's 2 cores are shared. About 10 minutes the first time.
# `build-conformance.sh --cached` builds nothing: it prints the directory when every tool is
# there and exits 3 otherwise (the e2e subset test uses it: `make test` never builds these).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
CACHE="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
OUT="$CACHE/conformance/k8s-$K8S_VERSION"
TOOLS=(e2e.test ginkgo agnhost sample-apiserver)

log() { printf '[build-conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

all_present() {
  for t in "${TOOLS[@]}"; do [ -x "$OUT/$t" ] || return 1; done
}

if all_present; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi
[ "${1:-}" = --cached ] && { log "not built yet: $OUT"; exit 3; }

command -v go >/dev/null || die "go is not installed (need Go >= 1.26)"
mkdir -p "$OUT"
WORK="$CACHE/build/conformance"
mkdir -p "$WORK"
cd "$WORK"
# -mod=mod: test-only dependencies of k8s.io/kubernetes/test/e2e are not in a tidy graph of
# the tools below; let the go command add them from the module cache.
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
start=$(date +%s)

log "resolving k8s.io/kubernetes@$K8S_VERSION"
modjson=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || die "go mod download k8s.io/kubernetes@$K8S_VERSION failed"
gomod=$(printf '%s' "$modjson" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
moddir=$(printf '%s' "$modjson" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"
# The staging modules point at ./staging, which is not part of the module zip: replace each
# with its published version of the same release (as hack/build-components.sh does).
staging_ver="v0${K8S_VERSION#v1}"
{
  echo "module sk8s.local/conformance"
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
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/sample-apiserver"
)
GO
log "go mod tidy (downloads modules on the first run)"
nice -n 19 go mod tidy >tidy.log 2>&1 || { tail -30 tidy.log >&2; die "go mod tidy failed (log: $WORK/tidy.log)"; }

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
VERSION_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$minor \
  -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitTreeState=clean"

build() {  # name, then the go command's arguments after -o
  local name=$1; shift
  [ -x "$OUT/$name" ] && return 0
  log "building $name $K8S_VERSION (nice -n 19; several minutes on 2 cores)"
  local t0; t0=$(date +%s)
  nice -n 19 "$@" >"build-$name.log" 2>&1 \
    || { tail -30 "build-$name.log" >&2; die "building $name failed (log: $WORK/build-$name.log)"; }
  mv "$OUT/$name.tmp" "$OUT/$name"
  log "built $name in $(( $(date +%s) - t0 ))s ($(du -h "$OUT/$name" | cut -f1))"
}

build ginkgo go build -trimpath -ldflags "-s -w" -o "$OUT/ginkgo.tmp" github.com/onsi/ginkgo/v2/ginkgo
# agnhost's own VERSION file is what `agnhost --version` and the image tag say.
agnhost_ver=$(cat "$moddir/test/images/agnhost/VERSION")
build agnhost go build -trimpath -ldflags "-s -w -X main.Version=$agnhost_ver" \
  -o "$OUT/agnhost.tmp" k8s.io/kubernetes/test/images/agnhost
build sample-apiserver go build -trimpath -ldflags "-s -w $VERSION_LDFLAGS" \
  -o "$OUT/sample-apiserver.tmp" k8s.io/sample-apiserver
build e2e.test go test -c -vet=off -trimpath -ldflags "-s -w $VERSION_LDFLAGS" \
  -o "$OUT/e2e.test.tmp" k8s.io/kubernetes/test/e2e
echo "$agnhost_ver" > "$OUT/agnhost.version"
all_present || die "some tools are missing in $OUT"
log "conformance tools ready in $OUT after $(( $(date +%s) - start ))s"
echo "$OUT"
