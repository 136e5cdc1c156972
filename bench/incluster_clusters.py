"""Tenant clusters on a real meta-cluster (SK8S_PLANE_RUNNER=pods, the kind bed): a
ServerlessCluster created -> Ready, several one after another (the warm pool of planes run
as Deployments serves them), next to the same run's baseline: a bare Pod of the same nodes
created -> Ready (the least any Pod-based control plane could take).

    python bench/incluster_clusters.py [--clusters 5] [--pods 5]

Needs the kind bed (hack/kind.sh up); installs sk8s there as tests/kind/test_incluster.py
does (kubectl apply -k manifests, the images loaded), and deletes its clusters at the end.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid

from common import IMAGE, REPO, row, summary

sys.path.insert(0, str(REPO))
from tests.kind.conftest import KindCluster, hack_kind  # noqa: E402
from tests.kind.test_incluster import IMAGES, build_images, install  # noqa: E402
from tests.unit.test_manifests import find_kubectl  # noqa: E402


def created_until(kind: KindCluster, obj: dict, done, timeout: float = 300) -> float:
    """Seconds from `kubectl create` of obj until a poll (every 0.1 s) finds done(obj)."""
    t0 = time.monotonic()
    proc = kind.kubectl("create", "-f", "-", stdin=json.dumps(obj))
    assert proc.returncode == 0, proc.stderr
    while time.monotonic() - t0 < timeout:
        got = kind.kubectl("get", obj["kind"].lower(), obj["metadata"]["name"], "-o", "json")
        if got.returncode == 0 and done(json.loads(got.stdout)):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise SystemExit(f"timed out: {obj['kind']} {obj['metadata']['name']}")


def ready(obj: dict) -> bool:
    return any(c.get("type") in ("Ready", "ContainersReady") and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or []) and \
        (obj.get("kind") != "ServerlessCluster" or (obj.get("status") or {}).get("phase") == "Ready")


def cluster_ready(kind: KindCluster, name: str) -> float:
    body = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"provider": "metapod"}}
    return created_until(kind, body, ready)


def pod_ready(kind: KindCluster, name: str) -> float:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"terminationGracePeriodSeconds": 0, "automountServiceAccountToken": False,
                    "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"]}]}}
    return created_until(kind, pod, ready)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=5)
    ap.add_argument("--pods", type=int, default=5)
    args = ap.parse_args()
    up = hack_kind("up", timeout=3600)
    if up.returncode != 0:
        raise SystemExit(f"hack/kind.sh up failed:\n{up.stderr[-3000:]}")
    kind = KindCluster(kubeconfig=up.stdout.strip().splitlines()[-1], kubectl_bin=find_kubectl())
    subprocess.run(["bash", str(REPO / "hack/build-image.sh"), IMAGE], check=True, capture_output=True)
    build_images()
    kind.load(*IMAGES, IMAGE)
    install(kind)
    time.sleep(30)  # the pool's first standby plane warms
    run = uuid.uuid4().hex[:5]
    clusters, pods = [], []
    try:
        for i in range(max(args.clusters, args.pods)):
            if i < args.pods:
                pods.append(pod_ready(kind, f"bench-pod-{run}-{i}"))
            if i < args.clusters:
                clusters.append(cluster_ready(kind, f"bench-{run}-{i}"))
    finally:
        for i in range(args.clusters):
            kind.kubectl("delete", "serverlesscluster", f"bench-{run}-{i}", "--wait=false", "--ignore-not-found")
        for i in range(args.pods):
            kind.kubectl("delete", "pod", f"bench-pod-{run}-{i}", "--wait=false", "--ignore-not-found")
    c, p = summary(clusters), summary(pods)
    print(row("ServerlessCluster created -> Ready (in a row)", c))
    print(row("baseline: bare Pod created -> Ready", p))
    print(f"{'ratio (p50)':44} {c['p50'] / p['p50']:.2f}x")
    print("each cluster:", " ".join(f"{v:.2f}" for v in clusters))


if __name__ == "__main__":
    main()
