#!/usr/bin/env bash
# Builds localhost/sk8s-python: the project's own Python interpreter, its standard library,
# the official Kubernetes client (`kubernetes` from the project's virtualenv, with exactly
# the packages it imports) and busybox, imported into podman's local storage as
# hack/build-image.sh does (no registry is reachable here). e2e runs in-cluster clients
# with it, as operators and controllers run in any cluster.
set -euo pipefail
IMAGE="${1:-localhost/sk8s-python:latest}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$HERE/../.venv/bin/python"
. "$HERE/lib/images.sh"
use_project_podman "$HERE"

VERSION=1
if image_is_current "$IMAGE" "$VERSION"; then
  echo "$IMAGE"
  exit 0
fi
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked" || BUSYBOX=/bin/busybox
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/app"
cp "$BUSYBOX" "$root/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

# The interpreter and its standard library, at the paths it was built for (no tests, no
# caches), and the packages the in-cluster client imports, found by importing them.
read -r BASE VER EXE < <("$PY" -c 'import sys; print(sys.base_prefix, "%d.%d" % sys.version_info[:2], sys.executable)')
REAL_EXE=$(readlink -f "$EXE")
STDLIB="$BASE/lib/python$VER"
mkdir -p "$root$(dirname "$REAL_EXE")" "$root$STDLIB/site-packages"
cp "$REAL_EXE" "$root$REAL_EXE"
ln -s "$REAL_EXE" "$root/bin/python3"
tar -C / --exclude='test' --exclude='tests' --exclude='idlelib' --exclude='tkinter' --exclude='ensurepip' \
  --exclude='__pycache__' --exclude='site-packages' --exclude='config-*' -c "${STDLIB#/}" | tar -C "$root" -x
"$PY" - "$root$STDLIB/site-packages" <<'EOF'
import importlib, pathlib, shutil, site, sys
dest = pathlib.Path(sys.argv[1])
importlib.import_module("kubernetes.config")
importlib.import_module("kubernetes.client")
roots = {pathlib.Path(p).resolve() for p in site.getsitepackages()}
tops = set()
for mod in list(sys.modules.values()):
    f = getattr(mod, "__file__", None)
    if not f:
        continue
    path = pathlib.Path(f).resolve()
    for r in roots:
        if r in path.parents:
            tops.add(r / path.relative_to(r).parts[0])
for top in sorted(tops):
    if top.is_dir():
        shutil.copytree(top, dest / top.name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(top, dest / top.name)
EOF

# Every shared library the interpreter and its extension modules load.
libs() { ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; }
{
  libs "$REAL_EXE"
  find "$root$STDLIB" -name '*.so' | while read -r so; do libs "$so"; done
} | sort -u | while read -r lib; do
  [ -e "$root$lib" ] && continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
tar -C "$root" -c . | podman import \
  --change 'CMD ["python3"]' \
  --change "LABEL sk8s.io/image-version=$VERSION" \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' - "$IMAGE" >/dev/null
echo "$IMAGE"
