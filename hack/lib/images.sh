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
