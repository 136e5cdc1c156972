#!/usr/bin/env bash
# The README's main command: bring up the embedded sk8s, create a tenant cluster, and
# deploy into it with plain kubectl; every pod runs in its own sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$(bash hack/build-components.sh 2>/dev/null):$PATH"
image=localhost/sk8s-busybox:latest   # built locally: no registry is reachable here
step() { printf '\n\033[1m+ %s\033[0m\n' "$*"; }

step "sk8s up"
sk8s up
export META_KUBECONFIG="$(sk8s kubeconfig)"

step "sk8s cluster create demo     # a ServerlessCluster: its own kube-apiserver, a virtual node"
tenant=$(sk8s cluster create demo | tee /dev/stderr | tail -1)
export KUBECONFIG="$tenant"

step "kubectl get nodes"
kubectl get nodes -o wide
step "kubectl create deployment web --image $image --replicas=2"
kubectl create deployment web --image "$image" --replicas=2 --dry-run=client -o yaml | kubectl apply -f -
kubectl rollout status deployment/web --timeout=120s
step "kubectl get all"
kubectl get all -o wide
ip=$(kubectl get pods -l app=web -o jsonpath='{.items[0].status.podIP}')
step "curl http://$ip/"
curl -sS --max-time 5 "http://$ip/"
pod=$(kubectl get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
step "kubectl logs $pod"
kubectl logs "$pod" --tail=5 || true
step "in the meta-cluster: kubectl get sk8s -A"
kubectl --kubeconfig "$META_KUBECONFIG" get sk8s -A
cat <<MSG

The tenant cluster "demo" is running. Use it with:
  export KUBECONFIG=$tenant
  export PATH=$(dirname "$(command -v kubectl)"):\$PATH
The meta-cluster's kubeconfig is $META_KUBECONFIG.
Delete the tenant with 'kubectl --kubeconfig $META_KUBECONFIG delete serverlesscluster demo';
stop everything with 'make down'.
MSG
