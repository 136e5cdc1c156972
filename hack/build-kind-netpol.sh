#!/usr/bin/env bash
# The kind test bed's NetworkPolicy enforcer (README "The kind test bed"): kube-router's
# network-policy controller, run firewall-only (iptables + ipset; no routing, no service
# proxy) by hack/kind.sh as a DaemonSet (hack/kind-netpol/kube-router.yaml). Built offline:
#   - kube-router from its Go module (the Go module proxy only), like the node components of
#     hack/build-kind-components.sh: ~/.cache/sk8s/bin/kube-router-<version>/kube-router;
#   - its image over a Debian bookworm root file system with iptables and ipset
#     (hack/build-debian-rootfs.sh), started by hack/kind-netpol/entrypoint.sh (which picks
#     the node's iptables backend): localhost/sk8s-kind/kube-router:<version>-<hash>.
# Prints the image's name; the hash covers all inputs, a second run returns in seconds.
# Test bed only, never shipped to users: v2.1.0, the only version the module proxy serves
# here, has reported security flaws. Why not sigs.k8s.io/kube-network-policies: it hands
# packets to userspace with the nft `queue` statement, and this host's kernel has no
# CONFIG_NFT_QUEUE (kube-router needs ip_set, xt_set and nft_compat, which it has).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/images.sh"
. "$HERE/lib/kind.sh"
kind_env
log() { printf '[build-kind-netpol %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
VERSION="${SK8S_KUBE_ROUTER_VERSION:-v2.1.0}"
NAME="$KIND_IMAGE_REPOSITORY/kube-router"
BIN=$(go_install_cached github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$VERSION")
ROOTFS=$(bash "$HERE/build-debian-rootfs.sh" iptables ipset ca-certificates)
ENTRYPOINT="$HERE/kind-netpol/entrypoint.sh"
HASH=$( { basename "$ROOTFS"; cat "$0" "$ENTRYPOINT"; sha256sum < "$BIN"; } | sha256sum | cut -c1-12)
IMAGE="$NAME:$VERSION-$HASH"
current_build "$NAME" "$IMAGE" "$HASH" && exit 0
t0=$(date +%s)
work=$(mktemp -d /var/tmp/sk8s-kind-netpol-XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$work" --exclude='./dev/*' -xpf "$ROOTFS"
install -D -m 0755 "$BIN" "$work/usr/local/bin/kube-router"
install -m 0755 "$ENTRYPOINT" "$work/usr/local/bin/kube-router-entrypoint"
tar -C "$work" --numeric-owner -c . | podman import -q \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["/usr/local/bin/kube-router-entrypoint"]' \
  --change "LABEL sk8s.io/image-version=$HASH" - "$IMAGE" >/dev/null
log "built $IMAGE in $(( $(date +%s) - t0 ))s"
publish_build "$NAME" "$IMAGE" "$HASH"
