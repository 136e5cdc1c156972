"""What runs of each tenant control plane on this host, and whether it answers: for
`sk8s status`. Read from the planes' directories (pid files, ports, arguments), probed
with each plane's own admin certificate; no operator needs to be up to answer.
"""
from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from ..embedded.processes import ProcessSet
from . import planes

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "virtual-node")


@dataclass
class Row:
    cluster: str     # namespace/name, the uid if unknown, or "(standby)"
    plane: str
    component: str
    pid: int | None
    health: str      # healthy, unhealthy, running (no health endpoint), standby, down
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


def _get(url: str, pki: Path, timeout: float) -> bool:
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return resp.status == 200
    except Exception:
        return False


def plane_rows(plane: planes.Plane, names: dict[str, str], timeout: float = 1.0) -> list[Row]:
    """`names`: ServerlessCluster uid -> namespace/name, as far as known."""
    procs = ProcessSet(plane.directory)
    uid = plane.claimed_by
    args = _args(plane.directory)
    cluster = "(standby)" if uid is None else names.get(uid) or args.get("cluster") or uid
    pki = plane.directory / "pki"
    rows = []
    for name in COMPONENTS:
        pid = procs.pid(name)
        endpoint = ""
        if name == "kube-apiserver":
            endpoint = f"https://127.0.0.1:{plane.apiserver_port}"
            health = "healthy" if pid and _get(f"{endpoint}/readyz", pki, timeout) else "unhealthy"
        elif name == "virtual-node":
            endpoint = f"https://127.0.0.1:{plane.kubelet_port}"
            if pid and not args:
                health = "standby"  # started ahead, waiting for a cluster to claim its plane
            else:
                health = "healthy" if pid and _get(f"{endpoint}/healthz", pki, timeout) else "unhealthy"
        else:
            health = "running"  # it serves no port (--secure-port=0): alive is all there is to see
        rows.append(Row(cluster, plane.id, name, pid, health if pid else "down", endpoint))
    return rows


def all_rows(names: dict[str, str], timeout: float = 1.0) -> list[Row]:
    return [r for p in planes.all_planes() for r in plane_rows(p, names, timeout)]
