#!/usr/bin/env bash
# Builds localhost/sk8s-operator:<tag>, the Dockerfile's image without a registry: Debian's
# Python 3.11 (a root file system from hack/build-debian-rootfs.sh), the project installed
# with pip into the virtualenv /opt/sk8s as the Dockerfile's `pip install .` does (its
# runtime dependencies, pinned in pyproject.toml, come from PyPI once, then from the wheel
# cache; pip is removed afterwards), the user sk8s (uid/gid 10001) and the Dockerfile's default command.
# The tag is <version>-<content hash> (pyproject.toml, operators/, this script, the base):
# an unchanged tree prints the existing image in a second; :latest follows the newest build
# and older builds are removed.
# Prints the image name.
set -euo pipefail
NAME="${1:-localhost/sk8s-operator}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
. "$HERE/lib/images.sh"
use_project_podman "$HERE"

BASE=$(bash "$HERE/build-debian-rootfs.sh" python3 python3-venv ca-certificates)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml")
HASH=$( { basename "$BASE"; cat "$0"; tree_digest "$REPO" pyproject.toml operators; } | sha256sum | cut -c1-12)
IMAGE="$NAME:$VERSION-$HASH"
current_build "$NAME" "$IMAGE" "$HASH" && exit 0
root=$(mktemp -d /tmp/sk8s-image-XXXXXX)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$BASE"
mkdir -p "$root/src" "$root/wheels"
tar -C "$REPO" --exclude='__pycache__' -c pyproject.toml operators | tar -C "$root/src" -x
# pip reaches PyPI from inside the root file system only for wheels the cache lacks: with
# this host's resolver and CA bundle (it may hold a TLS-intercepting egress CA), both removed
# before the image is made.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/tmp/build-ca.crt"
WHEELS="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}/wheels"
mkdir -p "$WHEELS"
# The dependencies and the build backend (pyproject's build-system requires) are kept as
# wheels in the cache, so a rebuild installs offline; a missing one (a new pin) is fetched
# and built once. The project's own wheel is not kept: it is what changes.
BACKEND=$(sed -n 's/^requires = \["\(.*\)"\]/\1/p' "$REPO/pyproject.toml")
cat > "$root/tmp/install.sh" <<'SH'
set -eu
python3 -m venv /opt/sk8s
offline() { /opt/sk8s/bin/pip install --quiet --no-index --find-links /wheels /src; }
if ! offline 2>/dev/null; then
  echo "fetching the missing wheels into the cache" >&2
  /opt/sk8s/bin/pip wheel --quiet --wheel-dir /wheels /src "$BACKEND"
  rm -f /wheels/sk8s-*.whl
  offline
fi
/opt/sk8s/bin/pip uninstall --quiet --yes pip
SH
# A private mount namespace: the bind mounts end with the command, even when it fails.
unshare --mount --propagation private sh -euc '
  mount --bind /dev "$1/dev"
  mount -t proc proc "$1/proc"
  mount --bind "$2" "$1/wheels"
  chroot "$1" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin BACKEND="$3" \
    PIP_CERT=/tmp/build-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PIP_NO_CACHE_DIR=1 PIP_USE_PEP517=1 sh /tmp/install.sh
' sh "$root" "$WHEELS" "$BACKEND" >&2
rm -rf "$root/src" "$root/wheels" "$root/tmp/build-ca.crt" "$root/tmp/install.sh" "$root/root/.cache" "${root:?}/dev/"*
: > "$root/etc/resolv.conf"
echo "sk8s:x:10001:10001::/home/sk8s:/usr/sbin/nologin" >> "$root/etc/passwd"
echo "sk8s:x:10001:" >> "$root/etc/group"
mkdir -p "$root/home/sk8s" && chown 10001:10001 "$root/home/sk8s" && chmod 1777 "$root/tmp"
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/opt/sk8s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'USER 10001:10001' --change 'WORKDIR /home/sk8s' --change 'EXPOSE 8080' \
  --change "LABEL sk8s.io/image-version=$HASH" \
  --change 'CMD ["kopf", "run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "-m", "operators.sandboxpod.operator"]' \
  - "$IMAGE" >/dev/null
publish_build "$NAME" "$IMAGE" "$HASH"
