"""Where a burst of pods spends its time: a Deployment of --replicas replicas in a tenant
cluster, each pod followed through the stages of its start, from watches (the bench's
own clock, not the API's one-second timestamps):

    created      the tenant's ReplicaSet controller made the Pod
    bound        the virtual node's binder set spec.nodeName
    sandboxpod   the virtual node made its SandboxPod in the meta-cluster
    instance     the SandboxPod operator's provider call returned (status.instanceID)
    sandbox up   the SandboxPod is Running
    running      the tenant Pod is Running (the virtual node copied the status back)

For each stage: when the last pod reached it (seconds after the Deployment was created:
a stage whose "last" jumps is where the burst queues) and the per-pod time spent since the
previous stage (p50/p99). The baseline of the same run is the bare runtime: as many
`podman run` of the same image one after another.

The provider's side is opened up too: every podman command the installation runs goes
through a shim first on its PATH (this bench's only), which records its verb and how long
it took; the report sums them by verb over the burst (a CLI process per call is what
issue 13's "warm sandbox path" would remove).

    python bench/burst_profile.py [--replicas 100]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
from pathlib import Path

from cluster_start import create_cluster, kubectl, tenant_kubeconfig
from common import IMAGE, REPO, pct, private_home, sk8s

STAGES = ["created", "bound", "sandboxpod", "instance", "sandbox up", "running"]


class Stamps:
    def __init__(self) -> None:
        self.by_pod: dict[str, dict[str, float]] = {}
        self.lock = threading.Lock()

    def mark(self, pod_uid: str, stage: str) -> None:
        with self.lock:
            self.by_pod.setdefault(pod_uid, {}).setdefault(stage, time.monotonic())


def watch_tenant(kubeconfig: str, stamps: Stamps) -> None:
    from kubernetes import client, config, watch
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    try:
        _follow_tenant(api, watch, stamps)
    except Exception:  # the stream ends when the bench tears the cluster down
        pass


def _follow_tenant(api, watch, stamps: Stamps) -> None:
    for ev in watch.Watch().stream(api.list_namespaced_pod, "default", label_selector="app=big",
                                   timeout_seconds=900):
        pod = ev["object"]
        uid = pod.metadata.uid
        stamps.mark(uid, "created")
        if pod.spec.node_name:
            stamps.mark(uid, "bound")
        if pod.status and pod.status.phase == "Running":
            stamps.mark(uid, "running")


def watch_meta(env: dict, stamps: Stamps) -> None:
    from kubernetes import client, config, watch
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=env["KUBECONFIG"]))
    try:
        _follow_meta(api, watch, stamps)
    except Exception:  # the stream ends when the bench tears the cluster down
        pass


def _follow_meta(api, watch, stamps: Stamps) -> None:
    for ev in watch.Watch().stream(api.list_cluster_custom_object, "sk8s.io", "v1alpha1", "sandboxpods",
                                   timeout_seconds=900):
        obj = ev["object"]
        uid = (obj["metadata"].get("labels") or {}).get("sk8s.io/pod-uid")
        if not uid:
            continue
        stamps.mark(uid, "sandboxpod")
        status = obj.get("status") or {}
        if status.get("instanceID"):
            stamps.mark(uid, "instance")
        if status.get("phase") == "Running":
            stamps.mark(uid, "sandbox up")


SHIM = """#!/bin/sh
t0=$(date +%s.%N)
/usr/bin/podman "$@"
rc=$?
echo "$t0 $(date +%s.%N) $1 $2" >> "$SK8S_PODMAN_TRACE"
exit $rc
"""


def install_shim(env: dict) -> Path:
    """A `podman` first on the installation's PATH, logging each call to a file."""
    bindir = Path(env["SK8S_HOME"]) / "bench-shim"
    bindir.mkdir()
    shim = bindir / "podman"
    shim.write_text(SHIM)
    shim.chmod(0o755)
    trace = Path(env["SK8S_HOME"]) / "podman-trace.log"
    env.update(PATH=f"{bindir}:{env['PATH']}", SK8S_PODMAN_TRACE=str(trace))
    return trace


def podman_calls(trace: Path, since: float, until: float) -> list[str]:
    """Podman calls by verb between two wall-clock times: count and summed seconds."""
    verbs: dict[str, list[float]] = {}
    for line in trace.read_text().splitlines() if trace.exists() else []:
        t0, t1, *words = line.split()
        if since <= float(t0) <= until:
            verb = " ".join(w for w in words[:2] if not w.startswith("-"))[:24]
            verbs.setdefault(verb, []).append(float(t1) - float(t0))
    rows = sorted(verbs.items(), key=lambda kv: -sum(kv[1]))
    return [f"{verb:24} {len(ts):5} calls {sum(ts):8.1f}s  p50 {pct(ts, 50):.2f}s" for verb, ts in rows[:12]]


def podman_runs(env: dict, n: int) -> float:
    """Seconds for n detached `podman run` one after another, then removed (the baseline)."""
    names = [f"sk8s-burst-base-{i}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:
        subprocess.run(["podman", "run", "-d", "--name", name, "--network=none", IMAGE, "sleep", "3600"],
                       env=env, check=True, capture_output=True)
    took = time.monotonic() - t0
    subprocess.run(["podman", "rm", "-f", "-t", "0", *names], env=env, capture_output=True)
    return took


def report(stamps: Stamps, t0: float, replicas: int) -> list[str]:
    lines = [f"{'stage':12} {'reached':>8} {'last at':>9} {'p50 since previous':>19} {'p99':>8}"]
    pods = [s for s in stamps.by_pod.values() if "created" in s]
    for i, stage in enumerate(STAGES):
        at = [s[stage] - t0 for s in pods if stage in s]
        gaps = [s[stage] - s[STAGES[i - 1]] for s in pods if stage in s and i and STAGES[i - 1] in s]
        last = max(at) if at else float("nan")
        p50 = f"{pct(gaps, 50):.2f}s" if gaps else "-"
        p99 = f"{pct(gaps, 99):.2f}s" if gaps else "-"
        lines.append(f"{stage:12} {len(at):>4}/{replicas:<3} {last:>8.2f}s {p50:>19} {p99:>8}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=100)
    args = ap.parse_args()
    env = private_home()
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    trace = install_shim(env)
    sk8s(env, "up")
    try:
        subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
        from kubernetes import config
        config.load_kube_config(env["KUBECONFIG"])
        create_cluster(env, "burst", {"quotas": {"maxPods": args.replicas + 10, "cpu": "200", "memory": "400Gi"}})
        kc = tenant_kubeconfig(env, "burst")
        stamps = Stamps()
        for target, a in ((watch_tenant, (kc, stamps)), (watch_meta, (env, stamps))):
            threading.Thread(target=target, args=a, daemon=True).start()
        time.sleep(1.0)
        t0, wall0 = time.monotonic(), time.time()
        kubectl(env, "create", "deployment", "big", f"--image={IMAGE}", f"--replicas={args.replicas}",
                "--", "sleep", "3600", kubeconfig=kc)
        while time.monotonic() - t0 < 600:
            done = sum(1 for s in stamps.by_pod.values() if "running" in s)
            if done >= args.replicas:
                break
            time.sleep(0.2)
        total = time.monotonic() - t0
        kubectl(env, "delete", "deployment", "big", "--wait=false", kubeconfig=kc)
        print(f"Deployment of {args.replicas} replicas -> all Running: {total:.2f}s  (target <= 15 s)")
        for line in report(stamps, t0, args.replicas):
            print("  " + line)
        print(f"podman calls during the burst (all processes, {total:.1f}s of wall time on this machine's cores):")
        for line in podman_calls(trace, wall0, wall0 + total):
            print("  " + line)
        time.sleep(20)  # the deletions settle before the baseline shares the runtime
        base = podman_runs(env, args.replicas)
        print(f"baseline: {args.replicas} x podman run, one after another: {base:.2f}s   "
              f"burst / baseline: {total / base:.2f}")
    finally:
        sk8s(env, "down")
        shutil.rmtree(env["SK8S_HOME"], ignore_errors=True)


if __name__ == "__main__":
    main()
