"""Shared helpers of the benchmarks: percentiles, a private sk8s home, printing."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/sk8s-busybox:latest"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99),
            "mean": statistics.fmean(values) if values else float("nan")}


def private_home() -> dict:
    home = tempfile.mkdtemp(prefix="sk8s-bench-")
    env = dict(os.environ, SK8S_HOME=home, CONTAINERS_CONF=f"{home}/containers.conf")
    env.pop("KUBECONFIG", None)
    return env


def sk8s(env: dict, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "operators.cli", *args], env=env, cwd=str(REPO),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"sk8s {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return time.monotonic() - t0, proc.stdout


def row(name: str, s: dict, unit: str = "s") -> str:
    return f"{name:44} n={s['n']:<4} p50={s['p50']:.3f}{unit}  p99={s['p99']:.3f}{unit}  mean={s['mean']:.3f}{unit}"


def time_to_running(list_fn, list_args: tuple, create, n: int, prefix: str, reached=None) -> list[float]:
    """Create n objects one after another; for each, seconds until a watch sees it Running
    (or, with `reached(obj)`, in the state that predicate looks for).

    `list_fn(*list_args)` is a kubernetes-client list call to watch; `create(name)` makes one.
    Watching (not polling) makes the figure the system's latency, not the benchmark's.
    """
    import threading
    import uuid

    from kubernetes import watch

    running: dict[str, float] = {}
    seen = threading.Event()

    def phase(obj) -> tuple[str, str | None]:
        if isinstance(obj, dict):
            return obj["metadata"]["name"], (obj.get("status") or {}).get("phase")
        return obj.metadata.name, obj.status.phase if obj.status else None

    def watcher() -> None:
        try:
            for ev in watch.Watch().stream(list_fn, *list_args, timeout_seconds=600):
                name, ph = phase(ev["object"])
                if (reached(ev["object"]) if reached else ph == "Running"):
                    running.setdefault(name, time.monotonic())
                    seen.set()
        except Exception:  # the stream ends when the benchmark tears the cluster down
            pass

    threading.Thread(target=watcher, daemon=True).start()
    time.sleep(0.5)
    times = []
    for i in range(n):
        name = f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        create(name)
        while name not in running and time.monotonic() - t0 < 60:
            seen.wait(0.01)
            seen.clear()
        if name not in running:
            raise SystemExit(f"{name} did not reach Running within 60 s")
        times.append(running[name] - t0)
    return times


def http_bulk(host: str, port: int, path: str, seconds: float, streams: int) -> float:
    """MB/s received over `streams` parallel HTTP/1.0 downloads of `path`, each fetched again
    until `seconds` are up. Blocking sockets in threads: the client's cost per byte stays
    small next to the data path's."""
    import socket
    import threading
    total = [0] * streams
    stop = time.monotonic() + seconds

    def one(i: int) -> None:
        buf = bytearray(256 * 1024)
        while time.monotonic() < stop:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                while time.monotonic() < stop:
                    n = s.recv_into(buf)
                    if not n:
                        break
                    total[i] += n
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(total) / (time.monotonic() - t0) / 1e6
