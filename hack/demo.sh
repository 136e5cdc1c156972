#!/usr/bin/env bash
# The README's main command: bring up the embedded sk8s and run a SandboxPod end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$(bash hack/build-components.sh 2>/dev/null):$PATH"

sk8s up
export KUBECONFIG="$(sk8s kubeconfig)"
echo "+ kubectl apply -f examples/sandboxpod-web.yaml"
kubectl apply -f examples/sandboxpod-web.yaml
echo "+ kubectl wait --for=condition=Ready sandboxpod/web"
kubectl wait --for=condition=Ready sandboxpod/web --timeout=120s
echo "+ kubectl get sandboxpods -o wide"
kubectl get sandboxpods -o wide
ip=$(kubectl get sandboxpod web -o jsonpath='{.status.podIP}')
echo "+ curl http://$ip/"
curl -sS --max-time 5 "http://$ip/"
echo "+ sk8s sandbox-logs web"
sk8s sandbox-logs web --tail 5
cat <<MSG

sk8s is running. Point kubectl at it with:
  export KUBECONFIG=$KUBECONFIG
  export PATH=$(dirname "$(command -v kubectl)"):\$PATH
Remove the sample with 'kubectl delete sandboxpod web'; stop everything with 'make down'.
MSG
