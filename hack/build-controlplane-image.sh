#!/usr/bin/env bash
# Builds localhost/sk8s-controlplane:<tag>: one image for a tenant's control plane, the
# container's command picks the component (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd in /usr/local/bin). The binaries are hack/build-components.sh's
# (static Go builds from the Go module cache), so the root file system holds nothing else:
# no shell, no libc; Debian's CA bundle (from hack/build-debian-rootfs.sh's root file system,
# not this host's, which may hold a TLS-intercepting egress CA), /etc/passwd and /etc/group
# with the user sk8s (uid/gid 10001, the image's user), /etc/nsswitch.conf, /tmp and a home.
# The tag is <Kubernetes version>-<content hash> (the binaries, this script, the base): a
# rebuild with nothing changed prints the existing image; :latest follows the newest build.
# Prints the image name.
set -euo pipefail
NAME="${1:-localhost/sk8s-controlplane}"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/images.sh"
use_project_podman "$HERE"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler etcd)

BIN=$(bash "$HERE/build-components.sh")
BASE=$(bash "$HERE/build-debian-rootfs.sh" python3 python3-venv ca-certificates)
K8S_VERSION=$(basename "$BIN" | sed -n 's/^k8s-\(v[^-]*\)-etcd-.*/\1/p')
HASH=$( { basename "$BASE"; cat "$0"; (cd "$BIN" && sha256sum "${COMPONENTS[@]}"); } | sha256sum | cut -c1-12)
IMAGE="$NAME:$K8S_VERSION-$HASH"
current_build "$NAME" "$IMAGE" "$HASH" && exit 0
root=$(mktemp -d /tmp/sk8s-image-XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/home/sk8s"
for c in "${COMPONENTS[@]}"; do cp "$BIN/$c" "$root/usr/local/bin/$c"; done
tar -C "$root" -xf "$BASE" ./etc/ssl/certs/ca-certificates.crt
printf 'root:x:0:0:root:/root:/sbin/nologin\nsk8s:x:10001:10001::/home/sk8s:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nsk8s:x:10001:\n' > "$root/etc/group"
echo "hosts: files dns" > "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp" && chown 10001:10001 "$root/home/sk8s"
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/bin' \
  --change 'USER 10001:10001' --change 'WORKDIR /home/sk8s' \
  --change "LABEL sk8s.io/image-version=$HASH" \
  - "$IMAGE" >/dev/null
publish_build "$NAME" "$IMAGE" "$HASH"
