"""Tenant control planes on this host, and a small pool of warm standby ones.

A kube-apiserver needs seconds to start (its bootstrap hooks), longer than the whole
"cluster in seconds" budget. So the operator keeps a few control planes started ahead
of demand, each with its own fresh CA and its own etcd prefix, serving nothing and no
one. Creating a cluster claims one (an O_EXCL file: two claims can never win the same
plane) and only starts the virtual node; the pool refills in the background.

A plane's directory holds its PKI, kubeconfigs, ports, logs and pid files; the file
`claimed-by` names the ServerlessCluster uid that owns it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..config import free_port, sk8s_home
from ..embedded.processes import PLANE_STOP_ORDER, ProcessSet, stop_process_sets

CLAIM = "claimed-by"
# A plane's processes, in the order they are stopped (embedded.processes.PLANE_STOP_ORDER).
STOP_ORDER = PLANE_STOP_ORDER


def planes_root() -> Path:
    return sk8s_home() / "planes"


@dataclass(frozen=True)
class Plane:
    directory: Path
    id: str
    apiserver_port: int
    kubelet_port: int
    etcd_prefix: str
    vpc_cidr: str | None = None  # its address plan (netplan.py); None: a plane made before plans

    @property
    def claimed_by(self) -> str | None:
        try:
            return (self.directory / CLAIM).read_text().strip() or None
        except FileNotFoundError:
            return None

    @property
    def processes(self) -> ProcessSet:
        return ProcessSet(self.directory)


def load(directory: Path) -> Plane | None:
    try:
        meta = json.loads((directory / "plane.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return Plane(directory, meta["id"], meta["apiserver"], meta["kubelet"], meta["etcdPrefix"], meta.get("vpcCIDR"))


def all_planes() -> list[Plane]:
    root = planes_root()
    if not root.exists():
        return []
    return [p for p in (load(d) for d in sorted(root.iterdir()) if d.is_dir()) if p]


_ID = re.compile(r"[0-9a-f]{12}")


def safe_id(pid: str) -> str:
    """A plane id read back from elsewhere (the `pods` runner's Secrets) before it names a directory."""
    if not isinstance(pid, str) or not _ID.fullmatch(pid):
        raise ValueError(f"not a plane id: {pid!r}")
    return pid


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def new_plane(claim_for: str | None = None, vpc_cidr: str | None = None, pid: str | None = None) -> Plane:
    """`vpc_cidr`: the VPC range held for it (the provider's hold, recorded here)."""
    pid = pid or new_id()
    # Not a port of another plane: a sleeping one's is bound by no process, yet its own.
    taken = {port for p in all_planes() for port in (p.apiserver_port, p.kubelet_port)}
    directory = planes_root() / pid
    directory.mkdir(parents=True)
    api = free_port(taken)
    plane = Plane(directory, pid, api, free_port(taken | {api}), f"/sk8s/tenants/{pid}", vpc_cidr)
    if claim_for:
        (directory / CLAIM).write_text(claim_for)
    (directory / "plane.json").write_text(json.dumps({"id": pid, "apiserver": plane.apiserver_port,
                                                      "kubelet": plane.kubelet_port,
                                                      "etcdPrefix": plane.etcd_prefix,
                                                      **({"vpcCIDR": vpc_cidr} if vpc_cidr else {})}))
    return plane


def find_claimed(uid: str) -> Plane | None:
    return next((p for p in all_planes() if p.claimed_by == uid), None)


def try_claim(plane: Plane, uid: str) -> bool:
    try:
        fd = os.open(plane.directory / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(uid)
    return True


def standby(ready_only: bool = True) -> list[Plane]:
    """Unclaimed planes, optionally only those marked warm (apiserver up, bootstrapped)."""
    return [p for p in all_planes() if p.claimed_by is None
            and (not ready_only or (p.directory / "warm").exists())]


def mark_warm(plane: Plane) -> None:
    (plane.directory / "warm").touch()


def remove(plane: Plane) -> None:
    shutil.rmtree(plane.directory, ignore_errors=True)


def stop_all() -> tuple[int, list[int]]:
    """Stop every plane's processes (they outlive operator restarts by design): the number
    of planes stopped, and the pids of plane processes no pid file held."""
    return stop_process_sets(planes_root(), STOP_ORDER)
