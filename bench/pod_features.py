"""A pod using the lifecycle features (2 init containers, 2 containers, a readiness probe)
created -> Ready, next to a single-container pod in the same tenant cluster, same run.

    python bench/pod_features.py [--pods 15]

Both are timed to the pod's Ready condition as a watch sees it. The featured pod runs
its init containers one after the other before its containers, then waits for its
first successful readiness probe; the ratio is what those features cost.
"""
from __future__ import annotations

import argparse
import json
import subprocess

from cluster_start import create_cluster, tenant_kubeconfig
from common import IMAGE, REPO, private_home, row, sk8s, summary, time_to_running


def single(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"]}]}}


def featured(name: str) -> dict:
    c = {"image": IMAGE, "imagePullPolicy": "IfNotPresent"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "initContainers": [{"name": "migrate", **c, "command": ["sh", "-c", "echo migrating"]},
                           {"name": "warm", **c, "command": ["sh", "-c", "echo warming"]}],
        "containers": [
            {"name": "web", **c, "command": ["sh", "-c", "mkdir -p /srv && echo ok > /srv/healthz && "
                                                         "exec httpd -f -p 8080 -h /srv"],
             "ports": [{"name": "http", "containerPort": 8080}],
             "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}},
            {"name": "sidecar", **c, "command": ["sleep", "3600"]}]}}


def is_ready(pod) -> bool:
    conds = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conds or [])


def ready_times(kubeconfig: str, build, n: int, prefix: str) -> list[float]:
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    return time_to_running(api.list_namespaced_pod, ("default",),
                           lambda name: api.create_namespaced_pod("default", build(name)), n, prefix, reached=is_ready)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=15)
    args = ap.parse_args()
    env = private_home()
    sk8s(env, "up")
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
    from kubernetes import config
    config.load_kube_config(config_file=env["KUBECONFIG"])
    try:
        create_cluster(env, "features", {"quotas": {"maxPods": 2 * args.pods + 10}})
        kc = tenant_kubeconfig(env, "features")
        ready_times(kc, single, 2, "warmup")  # first pods pay one-off costs (network, caches)
        plain, rich = [], []
        # Alternating halves: load from elsewhere on the machine weighs on both alike.
        for half in (args.pods // 2, args.pods - args.pods // 2):
            plain += ready_times(kc, single, half, "single")
            rich += ready_times(kc, featured, half, "featured")
    finally:
        sk8s(env, "down")
    p, r = summary(plain), summary(rich)
    print()
    print(row("single-container pod created -> Ready", p))
    print(row("2 init + 2 containers + readiness -> Ready", r))
    print(f"ratio featured/single: p50 {r['p50'] / p['p50']:.2f}x  p99 {r['p99'] / p['p99']:.2f}x")
    print(json.dumps({"single": p, "featured": r}))


if __name__ == "__main__":
    main()
