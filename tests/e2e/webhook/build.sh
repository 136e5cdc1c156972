#!/usr/bin/env bash
# Builds the e2e webhook image: one static Go binary (main.go, standard library only) in an
# otherwise empty root, imported into podman's local storage like the busybox test image.
# Rebuilt only when main.go changes (its hash is the image's label).
set -euo pipefail
IMAGE="${1:-localhost/sk8s-e2e-webhook:latest}"
here=$(cd "$(dirname "$0")" && pwd)
SK8S_HOME="${SK8S_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/sk8s}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$SK8S_HOME/containers.conf}"
VERSION=$(sha256sum "$here/main.go" | cut -c1-16)
if podman image exists "$IMAGE" && [ "$(podman image inspect --format '{{index .Config.Labels "sk8s.io/image-version"}}' "$IMAGE")" = "$VERSION" ]; then
  echo "$IMAGE"
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/tls"
(cd "$here" && CGO_ENABLED=0 GO111MODULE=off go build -trimpath -ldflags=-s -o "$root/webhook" main.go)
tar -C "$root" -c . | podman import \
  --change 'CMD ["/webhook"]' --change "LABEL sk8s.io/image-version=$VERSION" - "$IMAGE" >/dev/null
echo "$IMAGE"
