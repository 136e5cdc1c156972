# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# The kind test bed's environment, shared by hack/kind.sh and hack/build-kind-node-image.sh:
# its state directory (kubeconfig, kind config, containers.conf), podman pointed at the
# containers.conf written there, and kind told to use podman and the bed's own network.
KIND_CLUSTER="${SK8S_KIND_CLUSTER:-sk8s-kind}"
KIND_HOME="${SK8S_KIND_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/sk8s/kind}"
KIND_NETWORK="${SK8S_KIND_NETWORK:-sk8s-kind}"
# The node containers' network: IPv4 only (kind's own network would ask podman for an IPv6
# ULA subnet too), away from podman's default 10.88/16 and 10.89.x/24 and from the sk8s
# ranges (10.96/16 services, 10.112/12 tenant VPCs).
KIND_SUBNET="${SK8S_KIND_SUBNET:-10.249.0.0/24}"
# Load-balancer addresses the host routes to a node (hack/kind.sh setup_lb_route): the
# metapod provider's pool on this bed, outside the bed's and the sk8s ranges. One per bed
# (two beds on one pool would take its route from each other): 10.248.<the third number
# of the bed's subnet>.0/24 unless set.
_kind_octets=${KIND_SUBNET#*.*.}
KIND_LB_SUBNET="${SK8S_KIND_LB_SUBNET:-10.248.${_kind_octets%%.*}.0/24}"
KIND_POD_SUBNET="10.244.0.0/16"   # kind's default, spelled out: hack/kind.sh masquerades leaving it
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
KIND_NODE_IMAGE_NAME="localhost/sk8s-kind-node"
# Where kubeadm finds the control-plane images (ClusterConfiguration.imageRepository):
# local names, built by hack/build-kind-node-image.sh and imported into each node.
KIND_IMAGE_REPOSITORY="localhost/sk8s-kind"

# Node containers run systemd, containerd and the kubelet: runc (crun cannot run on this
# host's hybrid cgroups), ulimits this process may set without CAP_SYS_RESOURCE (nofile
# high enough for containerd and the kubelet), no pids limit of podman's (the node's own
# cgroups limit its pods).
KIND_CONTAINERS_CONF='# Written by hack/lib/kind.sh for the kind test bed (not the embedded mode'"'"'s).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]
pids_limit = 0
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
'

kind_env() {
  mkdir -p "$KIND_HOME"
  export CONTAINERS_CONF="$KIND_HOME/containers.conf"
  printf '%s' "$KIND_CONTAINERS_CONF" | cmp -s - "$CONTAINERS_CONF" ||
    printf '%s' "$KIND_CONTAINERS_CONF" > "$CONTAINERS_CONF"
  export KIND_EXPERIMENTAL_PROVIDER=podman KIND_EXPERIMENTAL_PODMAN_NETWORK="$KIND_NETWORK"
  export KUBECONFIG="$KIND_HOME/kubeconfig"
}

# go_install_cached MODULE VERSION: the module's main package built with `go install` from
# the Go module proxy into ~/.cache/sk8s/bin/<name>-<version>/ (name: the module path's last
# element), one Go build at a time (hack/build-components.sh's lock); prints the binary.
go_install_cached() {
  local module=$1 version=$2 name cache out t0
  name=${module##*/}
  cache="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
  out="$cache/bin/$name-$version"
  if [ ! -x "$out/$name" ]; then
    command -v go >/dev/null || { echo "go is not installed (need Go >= 1.26)" >&2; return 1; }
    mkdir -p "$out"
    (
      flock 9
      [ -x "$out/$name" ] && exit 0
      t0=$(date +%s)
      GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 GOBIN="$out" \
        go install -trimpath -ldflags "-s -w" "$module@$version" >&2
      echo "[go install] built $name $version in $(( $(date +%s) - t0 ))s" >&2
    ) 9>"$cache/build.lock"
  fi
  echo "$out/$name"
}
