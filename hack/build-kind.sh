#!/usr/bin/env bash
# kind (sigs.k8s.io/kind) built from its Go module at a pinned version (no release binary
# is downloaded) and cached: ~/.cache/sk8s/bin/kind-<version>/kind. Prints the binary's
# path; a second run returns at once. Runs with podman: KIND_EXPERIMENTAL_PROVIDER=podman
# (hack/kind.sh sets it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/kind.sh"
go_install_cached sigs.k8s.io/kind "${KIND_VERSION:-v0.33.0}"
