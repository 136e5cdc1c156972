#!/usr/bin/env bash
# The node components of the kind test bed, built from k8s.io/kubernetes (the Go module)
# like the control plane's by hack/build-components.sh, into a cache of their own so that
# the control plane's cache key (make setup) stays as it is:
#   ~/.cache/sk8s/bin/k8s-node-<version>/{kubelet,kubeadm,kube-proxy}
# Prints the directory. A second run returns in a second.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
export K8S_VERSION K8S_COMPONENTS="kubelet kubeadm kube-proxy" WITH_ETCD=0 \
  COMPONENTS_DIR="k8s-node-$K8S_VERSION"
exec bash "$HERE/build-components.sh"
