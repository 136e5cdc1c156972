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

# The pitch's demo. Its `kubectl run nginx` made a Deployment; kubectl >= 1.18 makes a bare
# Pod, so `kubectl create deployment` is today's spelling of the same step.
step "kubectl create deployment nginx --image $image     # the pitch: kubectl run nginx --image nginx:latest"
kubectl create deployment nginx --image "$image" --dry-run=client -o yaml | kubectl apply -f -
step "kubectl expose deployment nginx --port=80 --target-port=80 --name=nginx-svc --type=LoadBalancer"
kubectl expose deployment nginx --port=80 --target-port=80 --name=nginx-svc --type=LoadBalancer \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl rollout status deployment/nginx --timeout=120s
for _ in $(seq 100); do
  ip=$(kubectl get svc nginx-svc -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$ip" ] && break
  sleep 0.2
done
step "kubectl get all"
kubectl get all
step "curl $ip"
curl -sS --max-time 5 --retry 5 --retry-delay 1 --retry-all-errors "http://$ip/"
pod=$(kubectl get pods -l app=nginx -o jsonpath='{.items[0].metadata.name}')
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
