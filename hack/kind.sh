#!/usr/bin/env bash
# The kind test bed: a real 3-node Kubernetes v1.37.2 cluster (1 control plane, 2 workers)
# in podman containers, built and run offline (README "The kind test bed").
#   hack/kind.sh up            build what is missing, create (or reuse) the cluster, wait
#                              until every node is Ready; prints the kubeconfig's path
#   hack/kind.sh down          delete the cluster and its podman network
#   hack/kind.sh load IMAGE... load podman images into every node's containerd
#   hack/kind.sh kubeconfig    prints the kubeconfig's path
#   hack/kind.sh exists        exit status 0 when the cluster exists
# Pod network: no kindnetd image can be had here, so each node gets Debian's bridge CNI
# plugin on its own pod CIDR (the one the controller manager allocated) and a route to
# every other node's pod CIDR via that node's address on the bed's podman network.
# Services: kube-proxy (nftables mode); DNS: CoreDNS; both from images built with the node
# image. NetworkPolicy: kube-router's policy controller alone (a DaemonSet,
# hack/kind-netpol/), unless SK8S_KIND_NETPOL=0.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/kind.sh"
kind_env
log() { printf '[kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
WORKERS="${SK8S_KIND_WORKERS:-2}"

tools() {
  KIND=$(bash "$HERE/build-kind.sh")
  KUBECTL="$(bash "$HERE/build-components.sh")/kubectl"
}

cluster_exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; }

# stopped_nodes: prints the cluster's node containers that are not running; fails if none.
stopped_nodes() {
  local label="label=io.x-k8s.kind.cluster=$KIND_CLUSTER"
  comm -23 <(podman ps -a --filter "$label" --format '{{.Names}}' | sort) \
           <(podman ps --filter "$label" --format '{{.Names}}' | sort) | grep .
}

write_config() {
  {
    cat <<YAML
# Written by hack/kind.sh.
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $KIND_CLUSTER
networking:
  disableDefaultCNI: true        # no kindnetd image here: hack/kind.sh sets up bridge CNI
  podSubnet: $KIND_POD_SUBNET
  kubeProxyMode: nftables
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  imageRepository: $KIND_IMAGE_REPOSITORY
- |
  kind: KubeletConfiguration
  failCgroupV1: false            # this host has cgroup v1; kubelet 1.37 refuses it otherwise
nodes:
- role: control-plane
  image: $1
YAML
    for _ in $(seq "$WORKERS"); do printf -- '- role: worker\n  image: %s\n' "$1"; done
  } > "$KIND_HOME/kind-config.yaml"
}

ensure_network() {
  podman network exists "$KIND_NETWORK" ||
    podman network create --subnet "$KIND_SUBNET" "$KIND_NETWORK" >/dev/null
}

# node_table: "name podCIDR address" for each node, once every node has its pod CIDR.
node_table() {
  local want=$((WORKERS + 1)) table n
  for _ in $(seq 120); do
    table=$("$KUBECTL" get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null || true)
    n=$(awk 'NF == 3' <<< "$table" | wc -l)
    if [ "$n" -ge "$want" ]; then awk 'NF == 3' <<< "$table"; return 0; fi
    sleep 1
  done
  die "nodes without a pod CIDR after 120 s:
$table"
}

# setup_pod_network: each node's bridge CNI config on its pod CIDR, routes to the others',
# and pod traffic to anything outside the pod network masqueraded to the node's address (as
# kindnetd does): a pod's own address is routed between the nodes only, so a reply from
# elsewhere (podman's DNS server for CoreDNS, the host) finds its way back and no packet
# from the pod range leaves the host. Idempotent: run again after a node container
# restarted (its routes are gone then).
setup_pod_network() {
  local table node cidr addr other ocidr oaddr
  table=$(node_table)
  while read -r node cidr addr; do
    podman exec -i "$node" sh -c 'cat > /etc/cni/net.d/10-sk8s-bridge.conflist.tmp &&
      mv /etc/cni/net.d/10-sk8s-bridge.conflist.tmp /etc/cni/net.d/10-sk8s-bridge.conflist' <<JSON
{
  "cniVersion": "0.4.0",
  "name": "sk8s-kind",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
    podman exec "$node" sh -c 'iptables -t nat -C POSTROUTING -s "$1" ! -d "$1" -j MASQUERADE 2>/dev/null ||
      iptables -t nat -A POSTROUTING -s "$1" ! -d "$1" -j MASQUERADE' sh "$KIND_POD_SUBNET"
    while read -r other ocidr oaddr; do
      [ "$other" = "$node" ] && continue
      podman exec "$node" ip route replace "$ocidr" via "$oaddr"
    done <<< "$table"
  done <<< "$table"
}

# setup_lb_route: the host reaches the load-balancer pool (SK8S_METAPOD_LB_ADDRESSES of the
# metapod provider, providers/metapod/loadbalancer.py) through the control-plane node on the
# bed's bridge, whose kube-proxy serves those addresses; under it a `prohibit` route, so
# that with the bed down (the bridge and its route gone) no packet for the pool takes the
# default route. Local to this machine; idempotent.
setup_lb_route() {
  local addr
  addr=$("$KUBECTL" get node "$KIND_CLUSTER-control-plane" \
    -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  [ -n "$addr" ] || die "no address of $KIND_CLUSTER-control-plane"
  ip route replace prohibit "$KIND_LB_SUBNET" proto static metric 4096
  ip route replace "$KIND_LB_SUBNET" via "$addr" metric 100
}

# setup_netpol: NetworkPolicy enforced on every node by kube-router's network-policy
# controller, firewall only (hack/build-kind-netpol.sh, hack/kind-netpol/kube-router.yaml):
# its image loaded into the nodes that lack it, the DaemonSet applied, every pod ready (its
# caches synced, its chains written). It adds filter-table chains and ipsets in each node
# and leaves kube-proxy's nftables table, the bridge CNI, the routes and the masquerade
# rule alone. Idempotent: a reused cluster with the same image gets no change.
setup_netpol() {
  if [ "${SK8S_KIND_NETPOL:-1}" = 0 ]; then
    # A cluster that has kube-router keeps it (hack/kind.sh down, then up, for one without).
    log "SK8S_KIND_NETPOL=0: kube-router not set up"
    return 0
  fi
  local image node
  image=$(bash "$HERE/build-kind-netpol.sh")
  for node in $("$KIND" get nodes --name "$KIND_CLUSTER" 2>/dev/null); do
    # Listed whole, then searched: under pipefail a grep -q ending early fails the pipe.
    grep -qxF "$image" <<< "$(podman exec "$node" ctr --namespace=k8s.io images ls -q)" && continue
    log "loading $image into the nodes"
    ( load "$image" )   # a subshell: load's RETURN trap stays there
    break
  done
  sed "s|image: IMAGE$|image: $image|" "$HERE/kind-netpol/kube-router.yaml" |
    "$KUBECTL" apply -f - >&2
  "$KUBECTL" -n kube-system rollout status daemonset/kube-router --timeout=300s >&2 ||
    die "kube-router (NetworkPolicy) not ready on every node: kubectl -n kube-system logs -l k8s-app=kube-router"
  log "NetworkPolicy enforced by kube-router (${image##*:})"
}

up() {
  tools
  mkdir -p /lib/modules   # kind mounts it into every node
  local image t0
  image=$(bash "$HERE/build-kind-node-image.sh")
  if cluster_exists && stopped_nodes; then
    # Node containers stopped (the machine or podman restarted): kind does not restart a
    # cluster reliably (addresses change), a new one takes under a minute.
    log "cluster $KIND_CLUSTER has stopped nodes ($(stopped_nodes | paste -sd' ')): creating it anew"
    "$KIND" delete cluster --name "$KIND_CLUSTER" >&2
  fi
  if cluster_exists; then
    log "reusing cluster $KIND_CLUSTER"
    running=$(podman inspect --format '{{.ImageName}}' "$KIND_CLUSTER-control-plane" 2>/dev/null || true)
    [ "$running" = "$image" ] ||
      log "WARNING: the cluster runs ${running:-?}, the newest node image is $image: hack/kind.sh down, then up, to use it"
    "$KIND" export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1
  else
    write_config "$image"
    ensure_network
    log "creating cluster $KIND_CLUSTER ($image, 1 control plane, $WORKERS workers)"
    t0=$(date +%s)
    "$KIND" create cluster --config "$KIND_HOME/kind-config.yaml" --kubeconfig "$KUBECONFIG" >&2 ||
      die "kind create cluster failed (nodes kept for a look: $KIND_CLUSTER-*)"
    log "kind create cluster took $(( $(date +%s) - t0 ))s"
  fi
  setup_pod_network
  setup_lb_route
  "$KUBECTL" wait --for=condition=Ready node --all --timeout=300s >&2
  log "all nodes Ready"
  setup_netpol
  echo "$KUBECONFIG"
}

down() {
  tools
  if cluster_exists; then "$KIND" delete cluster --name "$KIND_CLUSTER" >&2; fi
  if podman network exists "$KIND_NETWORK"; then podman network rm "$KIND_NETWORK" >/dev/null || true; fi
  rm -f "$KUBECONFIG"
}

# load IMAGE...: podman images into every node (kind's `load docker-image` wants docker).
load() {
  tools
  [ $# -gt 0 ] || die "usage: $0 load IMAGE..."
  local archive
  archive=$(mktemp /var/tmp/sk8s-kind-load-XXXXXX.tar)
  trap 'rm -f "$archive"' RETURN
  rm -f "$archive"
  podman save -q -m --format docker-archive -o "$archive" "$@"
  "$KIND" load image-archive --name "$KIND_CLUSTER" "$archive" >&2
}

# One up, down or load at a time (two test sessions starting together share one cluster).
# flock -o: the lock is held by flock itself, not inherited by what kind starts (podman's
# conmon outlives this script and would hold it as long as the node containers run).
if [ -z "${SK8S_KIND_LOCKED:-}" ]; then
  SK8S_KIND_LOCKED=1 exec flock -o "$KIND_HOME/kind.lock" bash "$0" "$@"
fi
case "${1:-}" in
  up) up ;;
  down) down ;;
  load) shift; load "$@" ;;
  kubeconfig) echo "$KUBECONFIG" ;;
  exists) tools; cluster_exists ;;
  *) echo "usage: $0 up|down|load IMAGE...|kubeconfig|exists" >&2; exit 2 ;;
esac
