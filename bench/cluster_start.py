"""ServerlessCluster and tenant-pod figures, each next to its baseline from the same run.

    python bench/cluster_start.py [--sequential 10] [--concurrent 5] [--pods 50] [--replicas 100]
                                  [--standby 2] [--tenants 0]

- ServerlessCluster created -> Ready: p50/p99 over sequential and concurrent creations
  (targets p50 <= 2 s, p99 <= 4 s), next to a cold tenant kube-apiserver start (no pool).
- tenant Pod created -> Running over --pods pods, next to SandboxPod-only in the same run.
- a Deployment of --replicas replicas -> all Running (target <= 30 s).
- memory of one idle tenant control plane (apiserver + controller-manager + virtual node;
  target <= 200 MiB Rss), per process, next to the same run's baseline: a second private
  home whose planes start with SK8S_TENANT_LEAN=0 (the settings before the density work,
  operators/serverlesscluster/controlplane.py), each plane measured --idle seconds after
  Ready; and how many tenants this machine holds by that figure. With --tenants N it really
  creates N clusters and reports the memory they use.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import IMAGE, REPO, private_home, row, sk8s, summary, time_to_running
from sandbox_start import sandbox_pods


def kubectl(env: dict, *args: str, kubeconfig: str | None = None, input: str | None = None) -> str:
    bindir = subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, capture_output=True,
                            text=True, check=True).stdout.strip().splitlines()[-1]
    cmd = [f"{bindir}/kubectl", f"--kubeconfig={kubeconfig or env['KUBECONFIG']}", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def create_cluster(env: dict, name: str, spec: dict | None = None) -> float:
    from kubernetes import client
    api = client.CustomObjectsApi()
    t0 = time.monotonic()
    api.create_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "serverlessclusters", {
        "apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": name},
        "spec": spec or {}})
    while time.monotonic() - t0 < 180:
        obj = api.get_namespaced_custom_object("sk8s.io", "v1alpha1", "default", "serverlessclusters", name)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or []):
            return time.monotonic() - t0
        time.sleep(0.02)
    raise SystemExit(f"cluster {name} not Ready in 180 s")


def delete_cluster(name: str) -> None:
    from kubernetes import client
    client.CustomObjectsApi().delete_namespaced_custom_object("sk8s.io", "v1alpha1", "default",
                                                              "serverlessclusters", name)


def wait_gone(names: list[str]) -> None:
    from kubernetes import client
    api = client.CustomObjectsApi()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        left = {o["metadata"]["name"] for o in api.list_namespaced_custom_object(
            "sk8s.io", "v1alpha1", "default", "serverlessclusters")["items"]}
        if not left & set(names):
            return
        time.sleep(0.5)


def wait_pool(env: dict, size: int, timeout: float = 300) -> None:
    """Measure as on a machine that has been up a while: with the standby pool full."""
    root = Path(env["SK8S_HOME"]) / "planes"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        warm = [d for d in root.iterdir() if (d / "warm").exists() and not (d / "claimed-by").exists()] \
            if root.exists() else []
        if len(warm) >= size:
            return
        time.sleep(0.5)
    raise SystemExit(f"standby pool did not reach {size} in {timeout:.0f} s")


def tenant_kubeconfig(env: dict, name: str) -> str:
    from kubernetes import client
    secret = client.CoreV1Api().read_namespaced_secret(f"{name}-kubeconfig", "default")
    path = Path(env["SK8S_HOME"]) / f"{name}.kubeconfig"
    path.write_bytes(base64.b64decode(secret.data["kubeconfig"]))
    return str(path)


def tenant_pods(kubeconfig: str, n: int) -> list[float]:
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

    def create(name: str) -> None:
        api.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                              "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                                                  "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                                  "command": ["sleep", "3600"]}]}})

    return time_to_running(api.list_namespaced_pod, ("default",), create, n, "p")


def deployment(env: dict, kubeconfig: str, replicas: int) -> float:
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    t0 = time.monotonic()
    kubectl(env, "create", "deployment", "big", f"--image={IMAGE}", f"--replicas={replicas}", kubeconfig=kubeconfig)
    while time.monotonic() - t0 < 600:
        pods = api.list_namespaced_pod("default", label_selector="app=big").items
        if sum(1 for p in pods if p.status.phase == "Running") >= replicas:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit("deployment did not get all replicas Running in 600 s")


def mem_mib(pid: int, field: str) -> float:
    """Rss counts the binaries' shared pages in full for every tenant; Pss shares them out."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


MEM_FIELDS = ("Rss", "Anonymous", "Pss")  # Anonymous: the process's own pages, no binary text


def plane_memory(home: Path, uid: str, field: str = "Rss") -> dict[str, float]:
    for d in (home / "planes").iterdir():
        if (d / "claimed-by").exists() and (d / "claimed-by").read_text() == uid:
            return {p.stem: mem_mib(int(p.read_text()), field) for p in (d / "run").glob("*.pid")}
    return {}


def idle_plane_memory(env: dict, name: str, idle_s: float, ready_at: float | None = None) -> dict[str, dict]:
    """Each process's memory (MiB, by MEM_FIELDS) of cluster `name`'s plane, once it has been
    idle `idle_s` seconds since Ready (created here unless `ready_at` says when it was)."""
    from kubernetes import client
    if ready_at is None:
        create_cluster(env, name)
        ready_at = time.monotonic()
    time.sleep(max(0.0, ready_at + idle_s - time.monotonic()))
    uid = client.CustomObjectsApi().get_namespaced_custom_object(
        "sk8s.io", "v1alpha1", "default", "serverlessclusters", name)["metadata"]["uid"]
    return {f: plane_memory(Path(env["SK8S_HOME"]), uid, f) for f in MEM_FIELDS}


def baseline_plane_memory(standby: int, idle_s: float) -> dict[str, dict]:
    """The same figure in a second private home whose tenant planes start as before the
    density settings (SK8S_TENANT_LEAN=0), brought up after the first is down."""
    from kubernetes import config
    env = private_home()
    env.update(SK8S_STANDBY_PLANES=str(standby), SK8S_TENANT_LEAN="0")
    sk8s(env, "up")
    try:
        env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
        config.load_kube_config(config_file=env["KUBECONFIG"])
        wait_pool(env, standby)
        return idle_plane_memory(env, "base", idle_s)
    finally:
        sk8s(env, "down")


def memory_lines(lean: dict[str, dict], base: dict[str, dict]) -> list[str]:
    """One line per field: each process and the total, lean next to baseline."""
    lines = []
    for f in MEM_FIELDS:
        a, b = lean.get(f, {}), base.get(f, {})
        ta, tb = sum(a.values()), sum(b.values())
        procs = ", ".join(f"{k} {a.get(k, 0):.0f}/{b.get(k, 0):.0f}" for k in sorted(set(a) | set(b)))
        lines.append(f"  {f:9} total {ta:.0f} MiB / baseline {tb:.0f} MiB (ratio {ta / max(tb, 1):.2f}); "
                     f"per process lean/baseline: {procs}")
    return lines


def cold_apiserver(env: dict, n: int = 3) -> list[float]:
    """Baseline: a tenant kube-apiserver started from nothing, until /readyz (what the pool hides)."""
    from operators.serverlesscluster import cluster, planes
    import asyncio
    os.environ["SK8S_HOME"] = env["SK8S_HOME"]
    os.environ["SK8S_ETCD_URL"] = env["SK8S_ETCD_URL"]

    async def one() -> float:
        plane = planes.new_plane(claim_for="bench-cold")
        t = cluster.plane_tenant(plane)
        t0 = time.monotonic()
        await cluster.start_apiserver(t)
        ok = await cluster.wait_apiserver(t, 90)
        took = time.monotonic() - t0 if ok else float("nan")
        await cluster.destroy_plane(plane)
        return took
    return [asyncio.run(one()) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequential", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=5)
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--standby", type=int, default=5)
    ap.add_argument("--tenants", type=int, default=0)
    ap.add_argument("--idle", type=float, default=60, help="seconds a plane idles after Ready before its memory is read")
    ap.add_argument("--skip-baseline", action="store_true", help="no second home for the memory baseline")
    ap.add_argument("--skip-clusters", action="store_true", help="only the pod and Deployment figures")
    ap.add_argument("--skip-pods", action="store_true", help="only the cluster figures")
    args = ap.parse_args()
    env = private_home()
    env["SK8S_STANDBY_PLANES"] = str(args.standby)
    up_s, _ = sk8s(env, "up")
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    ports = json.loads(Path(env["SK8S_HOME"], "ports.json").read_text())
    env["SK8S_ETCD_URL"] = f"https://127.0.0.1:{ports['etcd_client']}"
    subprocess.run(["bash", str(REPO / "hack/build-image.sh")], env=env, check=True, capture_output=True)
    from kubernetes import config
    config.load_kube_config(config_file=env["KUBECONFIG"])
    results: dict = {"up_s": up_s}
    seq0_ready = None
    try:
        seq, conc, cold = [], [], []
        if not args.skip_clusters:
            wait_pool(env, args.standby)
        for i in range(0 if args.skip_clusters else args.sequential):
            seq.append(create_cluster(env, f"seq-{i}"))
            seq0_ready = seq0_ready or time.monotonic()
            time.sleep(1.0)  # a user does not create clusters back to back; the pool refills meanwhile
        if not args.skip_clusters:
            names = [f"seq-{i}" for i in range(args.sequential)]
            for n in names[1:]:
                delete_cluster(n)
            wait_gone(names[1:])
            wait_pool(env, args.standby)
            with ThreadPoolExecutor(args.concurrent) as ex:
                conc = list(ex.map(lambda i: create_cluster(env, f"conc-{i}"), range(args.concurrent)))
            cnames = [f"conc-{i}" for i in range(args.concurrent)]
            for n in cnames:
                delete_cluster(n)
            wait_gone(cnames)
            cold = cold_apiserver(env)

        tpods, sbp, dep_s = [], [], float("nan")
        if not args.skip_pods:
            create_cluster(env, "work", {"quotas": {"maxPods": args.pods + args.replicas + 10}})
            kc = tenant_kubeconfig(env, "work")
            tpods = tenant_pods(kc, args.pods)
            sbp = sandbox_pods(env, args.pods)
            kubectl(env, "delete", "pods", "--all", "--grace-period=0", kubeconfig=kc)
            dep_s = deployment(env, kc, args.replicas)
            kubectl(env, "delete", "deployment", "big", "--wait=false", kubeconfig=kc)

        from kubernetes import client
        lean = idle_plane_memory(env, "seq-0", args.idle, seq0_ready)
        mem = lean["Rss"]
        mem_total = sum(mem.values())
        avail = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                         if ln.startswith("MemAvailable")).split()[1]) / 1024
        tenants_mem = None
        if args.tenants:
            extra = [f"many-{i}" for i in range(args.tenants)]
            for n in extra:
                create_cluster(env, n)
            tenants_mem = sum(sum(plane_memory(Path(env["SK8S_HOME"]), client.CustomObjectsApi()
                                                .get_namespaced_custom_object("sk8s.io", "v1alpha1", "default",
                                                                              "serverlessclusters", n)
                                                ["metadata"]["uid"], "Pss").values()) for n in extra)
    finally:
        sk8s(env, "down")
    base = {} if args.skip_baseline else baseline_plane_memory(args.standby, args.idle)

    s_seq, s_conc, s_cold = summary(seq), summary(conc), summary(cold)
    s_tp, s_sbp = summary(tpods), summary(sbp)
    print()
    print(f"standby pool size: {args.standby}; sk8s up: {up_s:.2f}s")
    if seq:
        print(row(f"ServerlessCluster -> Ready, {args.sequential} sequential", s_seq))
        print(row(f"ServerlessCluster -> Ready, {args.concurrent} concurrent", s_conc))
        print(row("baseline: cold tenant kube-apiserver -> /readyz", s_cold))
        print(f"ratio cluster-Ready/cold-apiserver: p50 {s_seq['p50'] / s_cold['p50']:.2f}x"
              f"   (targets: p50 <= 2 s, p99 <= 4 s)")
    if tpods:
        print(row("tenant Pod created -> Running", s_tp))
        print(row("SandboxPod created -> Running (same run)", s_sbp))
        print(f"ratio tenant-pod/SandboxPod: p50 {s_tp['p50'] / s_sbp['p50']:.2f}x")
        print(f"Deployment of {args.replicas} replicas -> all Running: {dep_s:.2f}s   (target <= 30 s)")
    print(f"idle tenant control plane ({args.idle:.0f} s after Ready) RSS: {mem_total:.0f} MiB "
          + ", ".join(f"{k} {v:.0f}" for k, v in sorted(mem.items())) + "   (target <= 200 MiB)")
    print("  lean planes vs the same run's baseline (SK8S_TENANT_LEAN=0, a second home); Anonymous is"
          " a process's own memory, Rss adds the binary's pages that every tenant shares, Pss divides"
          " them among the processes mapping them:")
    for line in memory_lines(lean, base):
        print(line)
    print(f"tenants this machine holds by the Rss figure: {int(avail // max(mem_total, 1))} "
          f"(MemAvailable {avail:.0f} MiB)")
    if tenants_mem is not None:
        print(f"{args.tenants} extra live tenants use {tenants_mem:.0f} MiB Pss "
              f"({tenants_mem / args.tenants:.0f} MiB each)")
    print(json.dumps({"seq": s_seq, "conc": s_conc, "cold": s_cold, "tenant_pod": s_tp, "sandboxpod": s_sbp,
                      "deployment_s": dep_s, "plane_mib": lean, "baseline_plane_mib": base}))


if __name__ == "__main__":
    main()
