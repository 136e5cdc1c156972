#!/usr/bin/env bash
# Builds the local sample image (no registry is reachable here): a busybox-static root
# file system imported into podman's local storage, where the local provider finds it
# exactly as it would find a pulled image. It serves /www with httpd by default, logging
# each request (so `kubectl logs` has something to show).
set -euo pipefail
IMAGE="${1:-localhost/sk8s-busybox:latest}"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/images.sh"
use_project_podman "$HERE"

# Bump when the image's content changes: an older image of the same name is rebuilt.
VERSION=2
if image_is_current "$IMAGE" "$VERSION"; then
  echo "$IMAGE"
  exit 0
fi
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked" || BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { echo "busybox-static is not installed" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
echo "<h1>Welcome to sk8s</h1><p>served from a sandbox</p>" > "$root/www/index.html"
tar -C "$root" -c . | podman import \
  --change 'CMD ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]' \
  --change "LABEL sk8s.io/image-version=$VERSION" \
  --change 'EXPOSE 80' - "$IMAGE" >/dev/null
echo "$IMAGE"
