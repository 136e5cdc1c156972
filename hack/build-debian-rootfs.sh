#!/usr/bin/env bash
# Builds a minimal Debian root file system from Debian's own packages with mmdebstrap (no
# container registry is reachable here; deb.debian.org is) and caches it as a tarball,
# keyed by the suite, the package list and this script: a second run prints the cached path.
#   hack/build-debian-rootfs.sh python3 python3-venv ca-certificates   -> .../debian-bookworm-<key>.tar
# The "essential" variant (Essential: yes packages, no apt) plus the packages named; no
# documentation, manual pages or locales. The tarball carries neither this host's
# /etc/resolv.conf and /etc/hostname (the container runtime writes both); the image builders
# drop its device nodes (the runtime mounts /dev).
# Downloaded .debs are kept in the cache, so a rebuild with another package list only
# fetches what is new.
set -euo pipefail
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
CACHE="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
key=$( { echo "$SUITE $MIRROR $SECURITY $packages"; cat "$0"; } | sha256sum | cut -c1-12)
OUT="$CACHE/rootfs/debian-$SUITE-$key.tar"
if [ -f "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
if ! command -v mmdebstrap >/dev/null; then  # `make images` only: not in setup.sh's list
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing mmdebstrap (Debian's package)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >/dev/null
fi
debs="$CACHE/debs/$SUITE"
mkdir -p "$CACHE/rootfs" "$debs"
exec 9>"$CACHE/rootfs/build.lock"
flock 9
[ -f "$OUT" ] && { echo "$OUT"; exit 0; }
mmdebstrap --quiet --mode=root --variant=essential --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --skip=download/empty --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $debs /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $debs" \
  --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/archives/partial/*.deb' \
  --customize-hook=': > "$1"/etc/resolv.conf && : > "$1"/etc/hostname' \
  --format=tar "$SUITE" "$OUT.tmp" \
  "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
