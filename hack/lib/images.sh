# shellcheck shell=bash
# Shared by the scripts that build local images (no registry is reachable here): podman
# pointed at the containers.conf the project writes into its own state directory, and
# whether an image of the wanted content version is already in local storage.

# use_project_podman HACK_DIR: SK8S_HOME and CONTAINERS_CONF, the file written if missing.
use_project_podman() {
  SK8S_HOME="${SK8S_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/sk8s}"
  mkdir -p "$SK8S_HOME"
  export SK8S_HOME CONTAINERS_CONF="$SK8S_HOME/containers.conf"
  [ -f "$CONTAINERS_CONF" ] || "$1/../.venv/bin/python" -c \
    "from operators.config import layout, write_containers_conf; write_containers_conf(layout())"
}

# image_is_current IMAGE VERSION: the image exists with label sk8s.io/image-version=VERSION
# (an older one of the same name is rebuilt).
image_is_current() {
  podman image exists "$1" &&
    [ "$(podman image inspect --format '{{index .Config.Labels "sk8s.io/image-version"}}' "$1")" = "$2" ]
}

# tree_digest DIR PATH...: one line per file under the PATHs (relative to DIR, sorted, no
# __pycache__) with its sha256: what an image's content tag is derived from.
tree_digest() {
  (cd "$1" && shift && find "$@" -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# current_build NAME IMAGE VERSION: when IMAGE is current, NAME:latest points at it and it
# is printed (the build is skipped); fails otherwise.
current_build() {
  image_is_current "$2" "$3" && podman tag "$2" "$1:latest" && echo "$2"
}

# publish_build NAME IMAGE VERSION: a new build becomes NAME:latest, older builds of NAME go;
# prints IMAGE.
publish_build() {
  podman tag "$2" "$1:latest"
  drop_older_builds "$1" "$3"
  echo "$2"
}

# drop_older_builds NAME VERSION: removes NAME's images of another content version (a
# content-tagged build would otherwise leave one image behind per change); one still used
# by a container stays.
drop_older_builds() {
  podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' "$1" | while read -r ref id; do
    [ "$(podman image inspect --format '{{index .Config.Labels "sk8s.io/image-version"}}' "$id")" = "$2" ] ||
      podman rmi "$ref" >/dev/null 2>&1 || true
  done
}
