"""SandboxPod created -> Running on provider aliyun (the real SDK, signed requests, the
local OpenAPI emulator whose groups are real sandboxes) next to provider local, same run,
same image; and what the aliyun provider costs in API calls per pod.

    python bench/aliyun_start.py [--pods 20] [--burst 20]

One after another (latency), then a burst created at once (calls per pod). Target: at
most 3 calls per pod to reach Running, no per-pod polling.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from common import IMAGE, REPO, private_home, row, sk8s, summary, time_to_running

sys.path.insert(0, str(REPO))
from operators.emulator.alibaba import launch  # noqa: E402


def spec(provider: str | None) -> dict:
    out = {"terminationGracePeriodSeconds": 0, "containers": [
        {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
    if provider:
        out["provider"] = provider
    return out


def emulator(env: dict, path: str, method: str = "GET") -> dict:
    req = urllib.request.Request(f"http://{env['SK8S_ALIYUN_ENDPOINT']}/_emulator/{path}", method=method)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as resp:
        return json.loads(resp.read())


def one_by_one(api, n: int, provider: str | None, prefix: str) -> list[float]:
    def create(name: str) -> None:
        api.create_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "sandboxpods", {
            "apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
            "spec": spec(provider)})
    return time_to_running(api.list_namespaced_custom_object, ("sk8s.io", "v1alpha1", "default", "sandboxpods"),
                           create, n, prefix)


def burst(api, env: dict, n: int) -> tuple[float, dict]:
    """n aliyun SandboxPods created at once: seconds until all run, and the emulator's calls."""
    emulator(env, "calls", "DELETE")
    names = [f"burst-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:
        api.create_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "sandboxpods", {
            "apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
            "spec": spec("aliyun")})
    while time.monotonic() - t0 < 300:
        items = api.list_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "sandboxpods")["items"]
        if sum(1 for o in items if o["metadata"]["name"] in names
               and (o.get("status") or {}).get("phase") == "Running") == n:
            return time.monotonic() - t0, emulator(env, "calls")
        time.sleep(0.2)
    raise SystemExit(f"the burst of {n} did not run within 300 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--burst", type=int, default=20)
    args = ap.parse_args()
    env = private_home()
    subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, check=True, capture_output=True)
    proc, aliyun_env = launch.start(Path(env["SK8S_HOME"]), env)
    env.update(aliyun_env)
    try:
        sk8s(env, "up")
        env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
        subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
        from kubernetes import client, config
        config.load_kube_config(config_file=env["KUBECONFIG"])
        api = client.CustomObjectsApi()
        one_by_one(api, 2, None, "warm-local")
        one_by_one(api, 2, "aliyun", "warm-aliyun")
        local = one_by_one(api, args.pods, None, "local")
        emulator(env, "calls", "DELETE")
        aliyun = one_by_one(api, args.pods, "aliyun", "aliyun")
        sequential_calls = emulator(env, "calls")
        burst_s, burst_calls = burst(api, env, args.burst)
    finally:
        # The emulator first: its kubelets would start again the sandboxes `down` removes.
        proc.terminate()
        proc.wait(timeout=30)
        sk8s(env, "down")
    lo, al = summary(local), summary(aliyun)
    print()
    print(row("SandboxPod -> Running, provider local", lo))
    print(row("SandboxPod -> Running, provider aliyun", al))
    print(f"ratio aliyun/local: p50 {al['p50'] / lo['p50']:.2f}x  p99 {al['p99'] / lo['p99']:.2f}x")
    print(f"API calls, one by one: {sequential_calls['total']} for {args.pods} pods = "
          f"{sequential_calls['total'] / args.pods:.2f}/pod {sequential_calls['calls']}")
    print(f"burst of {args.burst}: all Running in {burst_s:.2f}s, {burst_calls['total']} calls = "
          f"{burst_calls['total'] / args.burst:.2f}/pod {burst_calls['calls']}   (target <= 3/pod)")
    print(json.dumps({"local": lo, "aliyun": al, "calls_sequential": sequential_calls,
                      "burst_s": burst_s, "calls_burst": burst_calls}))


if __name__ == "__main__":
    main()
