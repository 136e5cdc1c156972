#!/bin/sh
# The kube-router image's entrypoint (hack/build-kind-netpol.sh): kube-router's iptables and
# the node's must be one backend, or its rules and the node's (hack/kind.sh's masquerade,
# the kubelet's chains) sit in two rule sets. kind's node entrypoint picks legacy or nft at
# boot (legacy on this host); as upstream's iptables-wrapper does, take the backend that
# already holds the node's rules (this container shares the node's network namespace),
# then run kube-router with the arguments given.
set -eu
legacy=$(iptables-legacy-save 2>/dev/null | grep -c '^-' || true)
nft=$(iptables-nft-save 2>/dev/null | grep -c '^-' || true)
mode=nft
[ "$legacy" -gt "$nft" ] && mode=legacy
update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
echo "iptables backend: $mode (rules found: legacy $legacy, nft $nft)" >&2
exec /usr/local/bin/kube-router "$@"
