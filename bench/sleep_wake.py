"""Sleep mode: many tenants on one machine, most asleep; memory and wake latency.

    python bench/sleep_wake.py [--tenants 100] [--awake 10] [--wakes 20]

Creates --tenants clusters one after another, each with sleepWhenIdle. Every cluster but the
last --awake is put to sleep as soon as it is Ready (`sk8s cluster sleep`), so the machine
never holds more than --awake + the warm pool awake at once. Then:

- memory: Pss of every process of this home (meta-cluster, operators, tenant planes) before
  the first tenant and with all of them made; what one awake plane and one sleeping tenant
  cost (a sleeping tenant runs no process: its cost is its objects in the shared etcd);
- wake latency: `kubectl get pods` against --wakes sleeping tenants (each woken by it, then
  put back to sleep), p50/p99, next to the same command against an awake tenant (baseline:
  the same kubectl, no wake) in the same run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from cluster_start import create_cluster, mem_mib, tenant_kubeconfig
from common import REPO, private_home, row, sk8s, summary


def home_pss(home: Path) -> dict[str, float]:
    """Pss (MiB) of this home's processes: tenants' planes, the warm pool's, and the rest."""
    out: dict[str, float] = {"meta": 0.0, "planes": 0.0, "pool": 0.0}
    marker = f"{home}/planes/".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"SK8S_HOME={home}".encode() not in env.split(b"\0") and str(home).encode() not in cmd:
            continue
        kind = "meta"
        if marker in cmd:
            plane = cmd.split(marker, 1)[1].split(b"/", 1)[0].decode()
            kind = "planes" if (home / "planes" / plane / "claimed-by").exists() else "pool"
        out[kind] += mem_mib(int(proc.name), "Pss")
    return out


def tenant_kubectl(kubeconfig: str, bindir: str, *args: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([f"{bindir}/kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"tenant kubectl {' '.join(args)} failed: {proc.stderr}")
    return time.monotonic() - t0


def power(env: dict, verb: str, name: str) -> float:
    return sk8s(env, "cluster", verb, name)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=20)
    ap.add_argument("--awake", type=int, default=10)
    ap.add_argument("--wakes", type=int, default=10)
    args = ap.parse_args()
    env = private_home()
    home = Path(env["SK8S_HOME"])
    sk8s(env, "up")
    env["KUBECONFIG"] = str(home / "kubeconfig")
    bindir = subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, capture_output=True,
                            text=True, check=True).stdout.strip().splitlines()[-1]
    from kubernetes import config
    config.load_kube_config(config_file=env["KUBECONFIG"])
    names = [f"t{i:03d}" for i in range(args.tenants)]
    created, slept, awake_ms, wake_s, failures = [], [], [], [], []
    try:
        time.sleep(20)  # the warm pool settles before the base figure
        base = home_pss(home)
        t_all = time.monotonic()
        for i, name in enumerate(names):
            created.append(create_cluster(env, name, {"sleepWhenIdle": True, "sleepAfterIdleSeconds": 3600}))
            if i < args.tenants - args.awake:
                slept.append(power(env, "sleep", name))
            print(f"\r{i + 1}/{args.tenants} tenants", end="", file=sys.stderr, flush=True)
        t_all = time.monotonic() - t_all
        time.sleep(10)
        full = home_pss(home)
        awake = names[args.tenants - args.awake:]
        asleep = names[:args.tenants - args.awake]
        kc_awake = tenant_kubeconfig(env, awake[-1])
        tenant_kubectl(kc_awake, bindir, "get", "pods")  # kubectl's own caches warm
        awake_ms = [tenant_kubectl(kc_awake, bindir, "get", "pods") for _ in range(args.wakes)]
        for i in range(args.wakes if asleep else 0):  # round the sleeping tenants, each put back to sleep
            name = asleep[i % len(asleep)]
            kc = tenant_kubeconfig(env, name)
            try:
                wake_s.append(tenant_kubectl(kc, bindir, "get", "pods"))
                power(env, "sleep", name)
            except SystemExit as exc:  # the figures so far still count; say what failed
                failures.append(f"{name}: {exc}")
    finally:
        sk8s(env, "down")
        subprocess.run(["rm", "-rf", str(home)])
    n_awake, n_asleep = min(args.awake, args.tenants), max(0, args.tenants - args.awake)
    per_awake = full["planes"] / max(n_awake, 1)
    meta_growth = full["meta"] - base["meta"]
    print()
    print(f"{args.tenants} tenants made in {t_all:.0f}s ({n_asleep} asleep, {n_awake} awake)")
    print(row("ServerlessCluster -> Ready", summary(created)))
    print(row("sk8s cluster sleep (command -> Sleeping)", summary(slept)))
    print(f"memory (Pss): before any tenant {sum(base.values()):.0f} MiB "
          f"(meta-cluster and operators {base['meta']:.0f}, warm pool {base['pool']:.0f}); "
          f"with all {args.tenants}: {sum(full.values()):.0f} MiB (warm pool {full['pool']:.0f})")
    print(f"  awake tenant planes: {full['planes']:.0f} MiB, {per_awake:.0f} MiB per awake "
          f"tenant   (target <= 200 MiB awake)")
    print(f"  meta-cluster growth over {args.tenants} tenants: {meta_growth:.0f} MiB, "
          f"{meta_growth / max(args.tenants, 1):.1f} MiB per tenant; a sleeping tenant runs no process "
          f"(target <= 40 MiB asleep)")
    s_wake, s_awake = summary(wake_s), summary(awake_ms)
    print(row("kubectl get pods, sleeping tenant (wakes it)", s_wake))
    print(row("baseline: kubectl get pods, awake tenant", s_awake))
    print(f"ratio wake/awake: p50 {s_wake['p50'] / s_awake['p50']:.1f}x   (target: wake <= 2 s)")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(json.dumps({"tenants": args.tenants, "base_mib": base, "full_mib": full, "wake": s_wake,
                      "awake": s_awake, "created": summary(created), "slept": summary(slept)}))


if __name__ == "__main__":
    main()
