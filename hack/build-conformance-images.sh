#!/usr/bin/env bash
# Makes every image the upstream [Conformance] tests use available in podman's local storage
# under its exact upstream name (registry.k8s.io/e2e-test-images/agnhost:2.66.1, ...), so
# tenant pods find them through the same code path as a pulled image (`podman import`, as
# hack/build-image.sh does): IfNotPresent uses the local image, Always falls back to it when
# the registry is out of reach (the local provider's --pull=newer), Never finds it.
# No registry is reachable here, so each image is a root file system assembled from:
#   - agnhost built from source at the pinned version (hack/build-conformance.sh);
#   - this host's busybox-static for the usual applets;
#   - this host's bash as /bin/sh (Debian's busybox ash drops environment names that are not
#     shell identifiers, e.g. `data-1`, which the real images keep), and dig/nc/curl/getent
#     copied with the shared libraries they need.
# Stand-ins for images that are not agnhost are listed in README.md ("Conformance").
# Usage: build-conformance-images.sh TOOLS_DIR (the directory build-conformance.sh printed)
set -euo pipefail
TOOLS="${1:?usage: build-conformance-images.sh TOOLS_DIR}"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/images.sh"
use_project_podman "$HERE"
# Bump when an image's content changes: images of an older version are rebuilt.
VERSION=1
E2E=registry.k8s.io/e2e-test-images
log() { printf '[conformance-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The tools copied into the images (dig, nc) and `file`, installed here as hack/setup.sh
# installs its own: `make conformance` must work on a fresh machine too.
missing=()
for p in bind9-dnsutils netcat-openbsd file; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

moddir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -d "$moddir/test/images" ] || die "k8s.io/kubernetes@$K8S_VERSION is not in the Go module cache"
[ -x "$TOOLS/agnhost" ] || die "no agnhost in $TOOLS: run hack/build-conformance.sh first"
# Every tag as the release's image manifest (test/utils/image/manifest.go) names it.
tag() {  # ImageID (Agnhost, AgnhostPrev, BusyBox, ...)
  sed -n "s/^\s*configs\[$1\] = Config{list\.[A-Za-z0-9]*, \"[^\"]*\", \"\([^\"]*\)\"}.*/\1/p" \
    "$moddir/test/utils/image/manifest.go" | head -1 | grep . || die "no $1 in the image manifest"
}

current() {  # image: present and built by this version of the script
  image_is_current "$1" "$VERSION"
}

copy_bin() {  # root, host binary: the binary and every shared library it loads, same paths
  local root=$1 bin; bin=$(command -v "$2") || die "$2 is not installed on this host"
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

base_root() {  # a busybox root with bash as sh, glibc's name service, and a /tmp
  local root=$1 bb
  bb=$(command -v busybox); file -L "$bb" | grep -q "statically linked" || die "busybox-static is not installed"
  mkdir -p "$root"/{bin,etc,tmp,root,var/run,usr/bin}
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  for a in $("$bb" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  copy_bin "$root" bash
  cp -L "$(command -v bash)" "$root/bin/bash" && rm -f "$root/bin/sh" && ln -s bash "$root/bin/sh"
  copy_bin "$root" getent
  for l in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2; do
    [ -e "$l" ] && mkdir -p "$root$(dirname "$l")" && cp -L "$l" "$root$l"
  done
  printf 'hosts: files dns\npasswd: files\ngroup: files\n' > "$root/etc/nsswitch.conf"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
}

import_root() {  # root, image, --change arguments...
  local root=$1 image=$2; shift 2
  local changes=(--change "LABEL sk8s.io/image-version=$VERSION")
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$root" -c . | podman import "${changes[@]}" - "$image" >/dev/null
  log "imported $image"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# agnhost: the real image is alpine + bind-tools, curl, netcat, iproute2, bash + /agnhost.
agnhost_root() {
  local root=$1
  base_root "$root"
  for b in dig nslookup host curl nc ip ss; do command -v "$b" >/dev/null && copy_bin "$root" "$b"; done
  cp "$TOOLS/agnhost" "$root/agnhost"
  ln -s agnhost "$root/agnhost-2"
  mkdir -p "$root/uploads"
  cp "$moddir/test/images/agnhost/porter/localhost.crt" "$moddir/test/images/agnhost/porter/localhost.key" "$root/"
  # The user and group that the SupplementalGroups test expects to be defined in the image.
  echo 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh' >> "$root/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >> "$root/etc/group"
}
AGNHOST_CHANGES=('ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]' 'EXPOSE 80' 'EXPOSE 8080' 'EXPOSE 8081' 'EXPOSE 9376' 'EXPOSE 5000')

img=$E2E/agnhost:$(tag Agnhost)
if ! current "$img"; then
  agnhost_root "$tmp/agnhost"
  import_root "$tmp/agnhost" "$img" "${AGNHOST_CHANGES[@]}"
fi
# The previous agnhost of the manifest (AgnhostPrev): the same build under its tag.
podman tag "$img" "$E2E/agnhost:$(tag AgnhostPrev)"

# kitten / nautilus: agnhost + a picture and data.json, serving with test-webserver.
for pic in kitten nautilus; do
  img=$E2E/$pic:$(tag "${pic^}")
  current "$img" && continue
  r="$tmp/$pic"; agnhost_root "$r"
  cp "$moddir/test/images/$pic/html/"* "$r/"
  import_root "$r" "$img" "${AGNHOST_CHANGES[0]}" 'CMD ["test-webserver"]' 'EXPOSE 80'
done

# busybox: the upstream image is docker's busybox (CMD sh).
img=$E2E/busybox:$(tag BusyBox)
if ! current "$img"; then
  base_root "$tmp/busybox"
  import_root "$tmp/busybox" "$img" 'CMD ["sh"]'
fi

# nginx / nginx-new: stand-in busybox httpd serving nginx's welcome page on port 80.
for id in Nginx NginxNew; do
  img=$E2E/nginx:$(tag $id)
  current "$img" && continue
  r="$tmp/nginx-$id"; base_root "$r"
  mkdir -p "$r/usr/share/nginx/html"
  echo '<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>' \
    > "$r/usr/share/nginx/html/index.html"
  import_root "$r" "$img" 'CMD ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]' 'EXPOSE 80'
done

# glibc-dns-testing: the upstream image is Debian + dnsutils (dig with glibc's resolver).
img=$E2E/glibc-dns-testing:$(tag GlibcDnsTesting)
if ! current "$img"; then
  r="$tmp/glibc"; base_root "$r"; copy_bin "$r" dig
  import_root "$r" "$img" 'CMD ["sh"]'
fi

# nonroot: a Debian base with USER 1234.
img=$E2E/nonroot:$(tag NonRoot)
if ! current "$img"; then
  base_root "$tmp/nonroot"
  import_root "$tmp/nonroot" "$img" 'USER 1234' 'CMD ["sh"]'
fi

# nonewprivs: the upstream image is a base with nnp (prints its effective uid) set-uid root.
img=$E2E/nonewprivs:$(tag Nonewprivs)
if ! current "$img"; then
  r="$tmp/nonewprivs"; base_root "$r"; mkdir -p "$r/usr/local/bin" "$tmp/nnp-src"
  cp "$moddir/test/images/nonewprivs/nnp.go" "$tmp/nnp-src/"
  printf 'module nnp\n\ngo 1.22\n' > "$tmp/nnp-src/go.mod"
  (cd "$tmp/nnp-src" && CGO_ENABLED=0 go build -o "$r/usr/local/bin/nnp" .)
  chmod u+s "$r/usr/local/bin/nnp"
  import_root "$r" "$img" 'CMD ["nnp"]'
fi

# pause: agnhost's `pause` (the same behaviour as the pause binary: sleep until a signal).
img=registry.k8s.io/pause:$(tag Pause)
if ! current "$img"; then
  mkdir -p "$tmp/pause"; cp "$TOOLS/agnhost" "$tmp/pause/agnhost"
  import_root "$tmp/pause" "$img" 'ENTRYPOINT ["/agnhost", "pause"]'
fi

# etcd (for the sample API server's pod): the etcd this installation built, at the path the
# aggregator test runs it from.
img=registry.k8s.io/etcd:$(tag Etcd)
etcd_bin=$(ls -d "${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"/bin/k8s-"$K8S_VERSION"-etcd-*/etcd 2>/dev/null | head -1)
if ! current "$img" && [ -n "$etcd_bin" ]; then
  r="$tmp/etcd"; base_root "$r"; mkdir -p "$r/usr/local/bin" "$r/var/lib/etcd"
  cp "$etcd_bin" "$r/usr/local/bin/etcd"
  import_root "$r" "$img" 'CMD ["/usr/local/bin/etcd"]'
fi

# sample-apiserver: built from k8s.io/sample-apiserver of the same release when
# build-conformance.sh built it.
img=$E2E/sample-apiserver:$(tag APIServer)
if ! current "$img" && [ -x "$TOOLS/sample-apiserver" ]; then
  r="$tmp/sample-apiserver"; base_root "$r"; cp "$TOOLS/sample-apiserver" "$r/sample-apiserver"
  import_root "$r" "$img" 'ENTRYPOINT ["/sample-apiserver"]'
fi
log "images ready"
