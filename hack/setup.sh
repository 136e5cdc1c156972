#!/usr/bin/env bash
# Installs what a fresh machine lacks: Debian packages, the Python venv, and the
# control-plane binaries built from upstream (cached per machine). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# nfs-common: mount.nfs for NFS volumes; nfs-ganesha(-vfs): the userspace NFS server the e2e
# tests start (this host's kernel may have no nfsd). nftables, conntrack: the local load balancers' kernel
# data path (nft rules; conntrack ends UDP flows to a removed backend).
APT_PACKAGES=(podman runc catatonit busybox-static iproute2 iptables nftables conntrack curl nfs-common nfs-ganesha nfs-ganesha-vfs)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import kopf, operators" 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  log "installing Python packages"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi

bash hack/build-components.sh >/dev/null
bash hack/build-image.sh >/dev/null
log "ready"
