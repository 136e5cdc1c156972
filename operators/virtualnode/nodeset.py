"""The Nodes one virtual-node process registers: names, zones and each one's share of the quota (pure).

One node is the default and stays exactly as it always was (its name, no zone label, the
whole quota). With N > 1 nodes (spec.virtualNodes) each is a zone of its own, as ECI's
virtual nodes are per zone, so that zone spread and anti-affinity have somewhere to go.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from ..models.contracts import VIRTUAL_NODE_NAME, virtual_node_names

ZONE_LABEL = "topology.kubernetes.io/zone"
DEFAULT_ZONE_BASE = "local"


@dataclass(frozen=True)
class NodeShare:
    """One Node: its name, zone ("" for a single node: no zone label) and capacity."""

    name: str
    zone: str
    cpu: str      # a quantity
    memory: str   # a quantity
    pods: int


def zones(base: str, count: int) -> list[str]:
    """`<base>-a`, `<base>-b`, ... (base: the cluster's region, else "local"); none for one node."""
    if count <= 1:
        return [""]
    return [f"{base}-{string.ascii_lowercase[i]}" for i in range(count)]


def split(total: int, count: int) -> list[int]:
    """`total` in `count` integer shares that add up to it: the remainder goes one unit each to
    the first nodes (10 pods on 3 nodes: 4, 3, 3)."""
    base, rest = divmod(total, count)
    return [base + (1 if i < rest else 0) for i in range(count)]


def shares(*, first: str = VIRTUAL_NODE_NAME, count: int = 1, zone_base: str = DEFAULT_ZONE_BASE,
           cpu_millis: int, memory_bytes: int, pods: int, cpu: str, memory: str,
           cpu_limited: bool = True, memory_limited: bool = True) -> list[NodeShare]:
    """The quota split across the nodes: cpu in millicores, memory in bytes, pods whole
    (rounding as `split`). An unlimited resource (`*_limited` False) stays unlimited on every
    node: each advertises the same large amount. One node keeps the quantities as given."""
    names, zs = virtual_node_names(count, first), zones(zone_base, count)
    if count == 1:
        return [NodeShare(first, "", cpu, memory, pods)]
    cpus = [f"{m}m" for m in split(cpu_millis, count)] if cpu_limited else [cpu] * count
    mems = [str(b) for b in split(memory_bytes, count)] if memory_limited else [memory] * count
    return [NodeShare(n, z, c, m, p) for n, z, c, m, p in zip(names, zs, cpus, mems, split(pods, count))]
