"""kubectl exec through the virtual node, next to `podman exec` of the same sandbox container
in the same run.

    python bench/exec_latency.py [--runs 20] [--megabytes 20]

- round trip of `kubectl exec POD -- true` (WebSocket, what kubectl 1.37 uses; and SPDY, its
  fallback), next to `podman exec CONTAINER true`: the difference is what kubectl, the tenant
  apiserver and the virtual node add;
- throughput of `kubectl exec -i POD -- cat` on --megabytes of piped data, next to
  `podman exec -i CONTAINER cat`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid

from cluster_start import create_cluster, kubectl, tenant_kubeconfig
from common import IMAGE, REPO, private_home, row, sk8s, summary


def timed(cmd: list[str], env: dict, data: bytes | None = None) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, input=data, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}...: {proc.stderr.decode()}")
    if data is not None and len(proc.stdout) != len(data):
        raise SystemExit(f"{cmd[0]}: {len(proc.stdout)} bytes back of {len(data)}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--megabytes", type=int, default=20)
    args = ap.parse_args()
    env = private_home()
    sk8s(env, "up")
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
    from kubernetes import config
    config.load_kube_config(config_file=env["KUBECONFIG"])
    bindir = subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, capture_output=True,
                            text=True, check=True).stdout.strip().splitlines()[-1]
    container = f"execbench-{uuid.uuid4().hex[:8]}"
    try:
        create_cluster(env, "execbench")
        kc = tenant_kubeconfig(env, "execbench")
        kubectl(env, "run", "target", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                f"--overrides={json.dumps({'spec': {'containers': [{'name': container, 'image': IMAGE, 'command': ['sleep', '3600']}]}})}",
                kubeconfig=kc)
        kubectl(env, "wait", "--for=condition=Ready", "pod/target", "--timeout=120s", kubeconfig=kc)
        name = subprocess.run(["podman", "ps", "--format={{.Names}}", f"--filter=label=sk8s.io/container={container}"],
                              env=env, capture_output=True, text=True, check=True).stdout.split()[0]
        spdy_env = dict(env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false")
        exec_ = [f"{bindir}/kubectl", f"--kubeconfig={kc}", "exec", "target", "--"]
        via = {"kubectl exec (WebSocket)": (exec_ + ["true"], env), "kubectl exec (SPDY)": (exec_ + ["true"], spdy_env),
               "podman exec (baseline)": (["podman", "exec", name, "true"], env)}
        timed(*via["kubectl exec (WebSocket)"])  # warm-up
        times: dict[str, list[float]] = {k: [] for k in via}
        for _ in range(args.runs):  # interleaved: load from elsewhere weighs on all alike
            for label, (cmd, e) in via.items():
                times[label].append(timed(cmd, e))
        data = os.urandom(args.megabytes << 20)
        rates = {
            "kubectl exec -i cat (WebSocket)": args.megabytes / timed(
                [f"{bindir}/kubectl", f"--kubeconfig={kc}", "exec", "-i", "target", "--", "cat"], env, data),
            "kubectl exec -i cat (SPDY)": args.megabytes / timed(
                [f"{bindir}/kubectl", f"--kubeconfig={kc}", "exec", "-i", "target", "--", "cat"], spdy_env, data),
            "podman exec -i cat (baseline)": args.megabytes / timed(["podman", "exec", "-i", name, "cat"], env, data),
        }
    finally:
        sk8s(env, "down")
    print()
    for label, values in times.items():
        print(row(f"{label} round trip", summary(values)))
    for label, rate in rates.items():
        print(f"{label:44} {rate:.1f} MB/s")
    print(json.dumps({"round_trip": {k: summary(v) for k, v in times.items()}, "MBps": rates}))


if __name__ == "__main__":
    main()
