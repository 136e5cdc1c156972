"""What runs of each tenant control plane on this host, and whether it answers: for
`sk8s status`. Read from the planes' directories (pid files, ports, arguments), probed
with each plane's own admin certificate; no operator needs to be up to answer.
"""
from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

from ..embedded.processes import ProcessSet
from ..kubeclient.client import answers
from . import idle, planes

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "virtual-node")


@dataclass
class Row:
    cluster: str     # namespace/name, the uid if unknown, or "(standby)"
    plane: str
    component: str
    pid: int | None
    health: str      # healthy, unhealthy, running (no health endpoint), standby, asleep, down
    endpoint: str

    def as_dict(self) -> dict:
        return asdict(self)


def _args(directory: Path) -> dict[str, str]:
    """The virtual node's flags of a claimed plane (empty for a standby one)."""
    try:
        argv = json.loads((directory / "virtual-node.args").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


async def _get(url: str, pki: Path, timeout: float) -> bool:
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    except (OSError, ssl.SSLError):
        return False
    return await answers(url, ctx, timeout)


async def _health(name: str, pid: int | None, endpoint: str, args: dict, pki: Path, timeout: float) -> str:
    if not pid:
        return "down"
    if name == "kube-apiserver":
        return "healthy" if await _get(f"{endpoint}/readyz", pki, timeout) else "unhealthy"
    if name == "virtual-node":
        if not args:
            return "standby"  # started ahead, waiting for a cluster to claim its plane
        return "healthy" if await _get(f"{endpoint}/healthz", pki, timeout) else "unhealthy"
    return "running"  # it serves no port (--secure-port=0): alive is all there is to see


_PORTS = {"kube-apiserver": "apiserver_port", "virtual-node": "kubelet_port"}


async def plane_rows(plane: planes.Plane, names: dict[str, str], timeout: float = 1.0) -> list[Row]:
    """`names`: ServerlessCluster uid -> namespace/name, as far as known."""
    procs = ProcessSet(plane.directory)
    uid = plane.claimed_by
    args = _args(plane.directory)
    cluster = "(standby)" if uid is None else names.get(uid) or args.get("cluster") or uid
    pki = plane.directory / "pki"
    # kube-scheduler runs only for a cluster with several virtual nodes: no row otherwise.
    shown = [n for n in COMPONENTS
             if n != "kube-scheduler" or procs.pid(n) or args.get("scheduler") == "external"]
    pids = {name: procs.pid(name) for name in shown}
    endpoints = {name: f"https://127.0.0.1:{getattr(plane, _PORTS[name])}" if name in _PORTS else ""
                 for name in shown}
    health = await asyncio.gather(*(_health(n, pids[n], endpoints[n], args, pki, timeout) for n in shown))
    if idle.asleep(plane.directory) is not None:  # stopped on purpose; probing it would wake it
        health = ["asleep" if h == "down" else h for h in health]
    return [Row(cluster, plane.id, n, pids[n], h, endpoints[n]) for n, h in zip(shown, health)]


async def all_rows(names: dict[str, str], timeout: float = 1.0) -> list[Row]:
    rows = await asyncio.gather(*(plane_rows(p, names, timeout) for p in planes.all_planes()))
    return [r for plane in rows for r in plane]
