"""SandboxPod created -> Running, next to a bare `podman run` of the same image, same run.

    python bench/sandbox_start.py [--pods 50]

Also reports `sk8s up` wall time on a fresh home with cached binaries (target <= 10 s).
Targets: p50 <= 1 s, and <= 1.5x the bare podman figure.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
import uuid

from common import IMAGE, REPO, private_home, row, sk8s, summary, time_to_running


def bare_podman(env: dict, network: str, n: int) -> list[float]:
    """`podman run -d` of the same image and command on the same network: create -> running."""
    times = []
    for i in range(n):
        name = f"bench-bare-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        subprocess.run(["podman", "run", "-d", "--rm", f"--name={name}", f"--network={network}", "--init",
                        IMAGE, "sleep", "3600"], env=env, check=True, capture_output=True)
        times.append(time.monotonic() - t0)
        subprocess.Popen(["podman", "rm", "-f", "-t", "0", name], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return times


def sandbox_pods(env: dict, n: int) -> list[float]:
    from kubernetes import client, config

    config.load_kube_config(config_file=env["KUBECONFIG"])
    api = client.CustomObjectsApi()

    def create(name: str) -> None:
        api.create_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "sandboxpods", {
            "apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}})

    return time_to_running(api.list_namespaced_custom_object,
                           ("sk8s.io", "v1alpha1", "default", "sandboxpods"), create, n, "bench")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=50)
    args = ap.parse_args()
    env = private_home()
    subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, check=True, capture_output=True)
    up_cold, _ = sk8s(env, "up")
    up_again, _ = sk8s(env, "up")
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
    from operators.config import home_id
    network = f"sk8s-{home_id(__import__('pathlib').Path(env['SK8S_HOME']))}"
    try:
        bare_podman(env, network, 3)  # warm-up, not counted
        bare = bare_podman(env, network, args.pods)
        sbp = sandbox_pods(env, args.pods)
    finally:
        sk8s(env, "down")
    b, s = summary(bare), summary(sbp)
    print()
    print(f"sk8s up (fresh home, binaries cached): {up_cold:.2f}s   (target <= 10 s)")
    print(f"sk8s up (already running):             {up_again:.2f}s")
    print(row("bare `podman run -d` (baseline)", b))
    print(row("SandboxPod created -> Running", s))
    print(f"ratio SandboxPod/bare: p50 {s['p50'] / b['p50']:.2f}x  p99 {s['p99'] / b['p99']:.2f}x"
          f"   (targets: p50 <= 1 s, ratio <= 1.5x)")
    print(json.dumps({"up_s": up_cold, "bare": b, "sandboxpod": s}))


if __name__ == "__main__":
    main()
