#!/usr/bin/env bash
# Builds the kind node image of the test bed offline: localhost/sk8s-kind-node:<k8s>-<hash>.
# No registry is reachable here, so nothing comes from kind's own node image (kindest/node):
#   - a Debian bookworm root file system (hack/build-debian-rootfs.sh: systemd 252, which
#     boots on this host's cgroup v1; trixie's systemd 257 refuses to) with Debian's
#     containerd 1.6, runc, CNI plugins (bridge, host-local, portmap, loopback), iptables,
#     nftables, conntrack;
#   - kubelet, kubeadm, kube-proxy (hack/build-kind-components.sh) and kubectl
#     (hack/build-components.sh), v1.37.2 from the Go module;
#   - kind's node files from its Go module (images/base/files: the entrypoint, the kubelet
#     unit and its 10-kubeadm.conf drop-in, the containerd unit, sysctls, /kind/bin), the
#     systemd trimming of kind's images/base/Dockerfile;
#   - our containerd config (restrict_oom_score_adj = true: this host's processes lack
#     CAP_SYS_RESOURCE and runc fails without it; the pause image below as sandbox image;
#     Debian's CNI plugin directory);
#   - the images kubeadm runs (kube-apiserver, kube-controller-manager, kube-scheduler,
#     kube-proxy, etcd, pause, coredns) built here from the same binaries under the names of
#     `kubeadm config images list --image-repository localhost/sk8s-kind`, saved into
#     /kind/images/ and imported into containerd's k8s.io namespace at the node's first boot
#     (sk8s-images.service, ordered before the kubelet); CoreDNS from its Go module.
# The tag's hash covers all inputs: a second run prints the existing image in seconds.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/images.sh"
. "$HERE/lib/kind.sh"
kind_env
log() { printf '[build-kind-node-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

KIND=$(bash "$HERE/build-kind.sh")
KIND_VERSION=$(basename "$(dirname "$KIND")"); KIND_VERSION=${KIND_VERSION#kind-}
KIND_SRC=$(cd /tmp && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -d "$KIND_SRC/images/base/files" ] || { log "no kind source in the module cache"; exit 1; }
BIN=$(K8S_VERSION="$K8S_VERSION" bash "$HERE/build-components.sh")
NODE_BIN=$(K8S_VERSION="$K8S_VERSION" bash "$HERE/build-kind-components.sh")
# The images' names as kubeadm of this version spells them (the etcd, pause and CoreDNS tags
# are kubeadm's).
declare -A NAMES
while read -r ref; do
  n=${ref##*/}; NAMES[${n%%:*}]=$ref
done < <("$NODE_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" \
           --image-repository "$KIND_IMAGE_REPOSITORY")
COREDNS=$(go_install_cached github.com/coredns/coredns "${NAMES[coredns]##*:}")
NODE_PACKAGES=(systemd containerd runc containernetworking-plugins conntrack iptables nftables
  iproute2 ethtool util-linux mount kmod libseccomp2 bash ca-certificates jq procps)
ROOTFS=$(bash "$HERE/build-debian-rootfs.sh" "${NODE_PACKAGES[@]}")
PROXY_ROOTFS=$(bash "$HERE/build-debian-rootfs.sh" iptables nftables conntrack ca-certificates)
HASH=$( { basename "$ROOTFS"; basename "$PROXY_ROOTFS"; echo "$KIND_VERSION"; cat "$0"; echo "$KIND_IMAGE_REPOSITORY";
  (cd "$BIN" && sha256sum kube-apiserver kube-controller-manager kube-scheduler kubectl etcd);
  (cd "$NODE_BIN" && sha256sum kubelet kubeadm kube-proxy); sha256sum < "$COREDNS"; } | sha256sum | cut -c1-12)
IMAGE="$KIND_NODE_IMAGE_NAME:$K8S_VERSION-$HASH"
current_build "$KIND_NODE_IMAGE_NAME" "$IMAGE" "$HASH" && exit 0
# One build at a time (two beds, or two test sessions, asking at once): the second waits,
# then finds the image built.
CACHE="${SK8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sk8s}"
exec 9>"$CACHE/kind-node-image.lock"
flock 9
current_build "$KIND_NODE_IMAGE_NAME" "$IMAGE" "$HASH" && exit 0
t0=$(date +%s)
work=$(mktemp -d /var/tmp/sk8s-kind-node-XXXXXX)
built=()
cleanup() { [ ${#built[@]} -eq 0 ] || podman rmi "${built[@]}" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# --- the images kubeadm runs ------------------------------------------------------------
# A pod sandbox's pause process: PID 1 of the pod, reaps zombies, exits on SIGINT/SIGTERM.
mkdir -p "$work/pause"
cat > "$work/pause/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
printf 'module sk8s.local/pause\n\ngo 1.26.0\n' > "$work/pause/go.mod"
(cd "$work/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause .)

# component_image NAME BASE_TAR|- BINARY...: NAMES[NAME] from the binaries in /usr/local/bin
# over a Debian root file system (or nothing but /etc/passwd, /etc/group and /tmp).
component_image() {
  local name=$1 base=$2 dir="$work/img-$1"; shift 2
  mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/tmp"
  if [ "$base" != - ]; then tar -C "$dir" --exclude='./dev/*' -xpf "$base"; fi
  cp "$@" "$dir/usr/local/bin/"
  [ -f "$dir/etc/passwd" ] || printf 'root:x:0:0:root:/root:/sbin/nologin\n' > "$dir/etc/passwd"
  [ -f "$dir/etc/group" ] || printf 'root:x:0:\n' > "$dir/etc/group"
  chmod 1777 "$dir/tmp"
  tar -C "$dir" --numeric-owner -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENTRYPOINT [\"/usr/local/bin/$(basename "$1")\"]" - "${NAMES[$name]}" >/dev/null
  built+=("${NAMES[$name]}")
  rm -rf "$dir"
}
log "building the control-plane images (${NAMES[kube-apiserver]%/*}/...)"
for c in kube-apiserver kube-controller-manager kube-scheduler; do component_image "$c" - "$BIN/$c"; done
component_image etcd - "$BIN/etcd"
component_image kube-proxy "$PROXY_ROOTFS" "$NODE_BIN/kube-proxy"
component_image pause - "$work/pause/pause"
# CoreDNS (github.com/coredns/coredns at kubeadm's tag) runs as root here: upstream's image
# gives its nonroot user the bind capability as a file capability, which a tar import loses;
# kubeadm's Deployment adds NET_BIND_SERVICE and drops the rest.
component_image coredns - "$COREDNS"

# --- the node's root file system --------------------------------------------------------
root="$work/root"
mkdir -p "$root"
log "assembling the node root file system"
tar -C "$root" --exclude='./dev/*' -xpf "$ROOTFS"
files="$KIND_SRC/images/base/files"
install -D -m 0755 -t "$root/usr/local/bin" "$files/usr/local/bin/"*
install -D -m 0755 -t "$root/kind/bin" "$files/kind/bin/"*
install -m 0644 "$files/kind/README.txt" "$root/kind/"
install -D -m 0644 -t "$root/etc" "$files/etc/crictl.yaml"
install -D -m 0644 -t "$root/etc/default" "$files/etc/default/"*
install -D -m 0644 -t "$root/etc/sysctl.d" "$files/etc/sysctl.d/"*
install -D -m 0644 -t "$root/etc/systemd/system" "$files/etc/systemd/system/"*.service "$files/etc/systemd/system/"*.slice
install -D -m 0644 -t "$root/etc/systemd/system/kubelet.service.d" "$files/etc/systemd/system/kubelet.service.d/"*
install -D -m 0644 "$KIND_SRC/LICENSE" "$root/LICENSES/kind-LICENSE"
rm -f "$root/etc/systemd/system/containerd-fuse-overlayfs.service"   # no fuse-overlayfs here
# Debian's containerd lives in /usr/bin, kind's unit starts /usr/local/bin/containerd.
sed -i 's|^ExecStart=/usr/local/bin/containerd|ExecStart=/usr/bin/containerd|' "$root/etc/systemd/system/containerd.service"
for b in kubelet kubeadm kube-proxy; do install -m 0755 "$NODE_BIN/$b" "$root/usr/bin/$b"; done
install -m 0755 "$BIN/kubectl" "$root/usr/bin/kubectl"
echo "$K8S_VERSION" > "$root/kind/version"
mkdir -p "$root/etc/containerd" "$root/etc/cni/net.d" "$root/etc/kubernetes/manifests" "$root/kind/manifests" "$root/kind/images"
cat > "$root/etc/containerd/config.toml" <<TOML
# Written by hack/build-kind-node-image.sh (kind's images/base config, for containerd 1.6).
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${NAMES[pause]}"
  tolerate_missing_hugepages_controller = true
  # The node's processes lack CAP_SYS_RESOURCE: without this runc fails with
  # "can't get final child's PID from pipe: EOF" when it lowers a container's oom_score_adj.
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  discard_unpacked_layers = true
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
[plugins."io.containerd.grpc.v1.cri".cni]
  # Debian's containernetworking-plugins; hack/kind.sh writes each node's bridge config.
  bin_dir = "/usr/lib/cni"
  conf_dir = "/etc/cni/net.d"
TOML
# No storage provisioner image here: a default StorageClass for pre-provisioned volumes.
cat > "$root/kind/manifests/default-storage.yaml" <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
YAML
log "saving the images kubeadm runs into /kind/images"
podman save -q -m --format docker-archive -o "$root/kind/images/sk8s-images.tar" "${built[@]}" >/dev/null
cat > "$root/etc/systemd/system/sk8s-images.service" <<'UNIT'
[Unit]
Description=Import the images kubeadm runs into containerd (sk8s kind test bed, once)
Requires=containerd.service
After=containerd.service
Before=kubelet.service
ConditionPathExists=!/var/lib/sk8s-images-imported

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ctr --namespace=k8s.io images import --all-platforms /kind/images/sk8s-images.tar
ExecStartPost=/usr/bin/touch /var/lib/sk8s-images-imported

[Install]
WantedBy=multi-user.target
UNIT
# kind's images/base/Dockerfile: a container's systemd starts only what the node needs.
rm -f "$root/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service" \
  "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$root/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service sk8s-images.service >/dev/null 2>&1
systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1
log "importing $IMAGE"
tar -C "$root" --numeric-owner -c . | podman import -q \
  --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change "LABEL sk8s.io/image-version=$HASH" - "$IMAGE" >/dev/null
log "built $IMAGE in $(( $(date +%s) - t0 ))s"
publish_build "$KIND_NODE_IMAGE_NAME" "$IMAGE" "$HASH"
