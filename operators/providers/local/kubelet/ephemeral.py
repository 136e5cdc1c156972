"""Local ephemeral storage limits, enforced as the kubelet's eviction manager does
(pkg/kubelet/eviction/eviction_manager.go, localStorageEviction): every period, the pod's
usage is measured and a pod past a limit is evicted at once (grace period 0), Failed with
reason Evicted and the kubelet's message.

- Pod: the containers' writable layers and logs plus the pod's local ephemeral volumes
  (disk emptyDirs with or without sizeLimit, configMap and downwardAPI files) against the
  sum of the containers' limits.ephemeral-storage (resourcehelper.PodLimits).
- Container: its writable layer (podman's overlay upper directory) and its log file against
  its own limit.

`decide` is pure; `disk_usage` walks a directory as du does (allocated blocks, symlinks not
followed, one file system).
"""
from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass, field

from ....models.podspec import Container, PodSpec
from ....quantity import parse

RESOURCE = "ephemeral-storage"
PERIOD = 10.0  # the kubelet's eviction monitoring period (housekeeping)
POD_FMT = "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
CONTAINER_FMT = 'Container {} exceeded its local ephemeral storage limit "{}". '
REASON = "Evicted"

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def format_quantity(n: int, like: str) -> str:
    """resource.Quantity's canonical String() in the format of `like` (binary or decimal SI)."""
    binary = any(str(like).endswith(s) for s, _ in _BINARY)
    for suffix, size in _BINARY if binary else _DECIMAL:
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _limit(c: Container) -> tuple[int, str] | None:
    raw = ((c.resources.limits or {}) if c.resources else {}).get(RESOURCE)
    if raw is None:
        return None
    n = int(parse(raw).to_integral_value())
    return (n, format_quantity(n, str(raw))) if n > 0 else None


@dataclass
class Limits:
    containers: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (bytes, as the kubelet prints it)
    pod: tuple[int, str] | None = None

    def __bool__(self) -> bool:
        return self.pod is not None


def limits(spec: PodSpec) -> Limits:
    """As resourcehelper.PodLimits: the containers' and sidecars' limits summed, at least the
    largest regular init container's."""
    out = Limits()
    total, like = 0, None
    for c in list(spec.containers) + [c for c in spec.initContainers or [] if c.restartPolicy == "Always"]:
        lim = _limit(c)
        if lim:
            out.containers[c.name] = lim
            total += lim[0]
            like = like or lim[1]
    for c in spec.initContainers or []:
        lim = _limit(c)
        if lim and c.restartPolicy != "Always" and lim[0] > total:
            total, like = lim[0], lim[1]
    if total:
        out.pod = (total, format_quantity(total, like or ""))
    return out


def local_volumes(spec: PodSpec) -> list[str]:
    """The pod's volumes that count as local ephemeral storage (util.IsLocalEphemeralVolume)."""
    return [v.name for v in spec.volumes or []
            if (v.emptyDir is not None and v.emptyDir.medium != "Memory") or v.configMap or v.downwardAPI]


def decide(lim: Limits, containers: dict[str, int], volumes: dict[str, int]) -> str | None:
    """The eviction message, or None. `containers`: each container's writable layer plus logs."""
    if lim.pod and sum(containers.values()) + sum(volumes.values()) > lim.pod[0]:
        return POD_FMT.format(lim.pod[1])
    for name, used in containers.items():
        c = lim.containers.get(name)
        if c and used > c[0]:
            return CONTAINER_FMT.format(name, c[1])
    return None


def disk_usage(path: str) -> int:
    """Bytes allocated under `path`, as `du -sx`; 0 if it does not exist."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total = top.st_blocks * 512
    if not stat.S_ISDIR(top.st_mode):
        return total
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top.st_dev:
                stack.append(e.path)
    return total


async def usage(runtime, ref, containers: list[str], spec: PodSpec) -> tuple[dict[str, int], dict[str, int]]:
    """Each container's writable layer and log, and the pod's local volumes, in bytes."""
    out = {}
    for name in containers:
        data = await runtime.inspect_container(ref, name)
        if data is None:
            continue
        upper = ((data.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
        paths = [p for p in (upper, data.get("LogPath") or "") if p]
        out[name] = sum(await asyncio.gather(*(asyncio.to_thread(disk_usage, p) for p in paths)))
    volumes = {name: await asyncio.to_thread(disk_usage, str(runtime.volume_dir(ref, name)))
               for name in local_volumes(spec)}
    return out, volumes
