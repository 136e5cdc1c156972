"""The Node's condition taints, kept as kube-controller-manager's node-lifecycle controller
keeps them (doNoScheduleTaintingPass), which the tenant control plane does not run.

The apiserver's TaintNodesByCondition admission gives every new Node
`node.kubernetes.io/not-ready:NoSchedule`; without this controller the virtual node would
keep it forever. The NoSchedule taints of the conditions (not-ready while Ready is False,
unreachable while Unknown, memory/disk/PID pressure and network-unavailable while True)
and `node.kubernetes.io/unschedulable` (while `spec.unschedulable`, i.e. cordoned) are
this controller's; every other taint (a user's `kubectl taint`) is left as it is. Writes
are merge patches with the read resourceVersion as a precondition, retried on conflict,
so a taint added meanwhile is never dropped.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from ...conditions import now_rfc3339
from ...kubeclient.client import MERGE, ApiError, KubeClient

log = logging.getLogger(__name__)

UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
CONDITION_TAINTS = {  # (condition type, status) -> taint key, as nodeConditionToTaintKeyStatusMap
    ("Ready", "False"): "node.kubernetes.io/not-ready",
    ("Ready", "Unknown"): "node.kubernetes.io/unreachable",
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
}
OWNED_KEYS = frozenset(CONDITION_TAINTS.values()) | {UNSCHEDULABLE}
CONFLICT_RETRIES = 5


def _owned(taint: dict) -> bool:
    return taint.get("effect") == "NoSchedule" and taint.get("key") in OWNED_KEYS


def wanted_keys(node: dict) -> set[str]:
    """The NoSchedule taint keys the node's conditions and spec.unschedulable call for."""
    conds = (node.get("status") or {}).get("conditions") or []
    keys = {CONDITION_TAINTS[k] for k in ((c.get("type"), c.get("status")) for c in conds) if k in CONDITION_TAINTS}
    if (node.get("spec") or {}).get("unschedulable"):
        keys.add(UNSCHEDULABLE)
    return keys


def desired_taints(node: dict, now: str | None = None) -> list[dict] | None:
    """The node's taints with the owned ones matching its conditions, or None when they
    already do. Taints that are not ours keep their place and content."""
    current = (node.get("spec") or {}).get("taints") or []
    want = wanted_keys(node)
    have = {t["key"] for t in current if _owned(t)}
    if want == have:
        return None
    kept = [t for t in current if not _owned(t) or t["key"] in want]
    added = [{"key": k, "effect": "NoSchedule", "timeAdded": now or now_rfc3339()} for k in sorted(want - have)]
    return kept + added


async def sync_taints(client: KubeClient, path: str) -> list[dict] | None:
    """Bring the node's owned taints in line with its conditions; returns the taints
    written, None when nothing was to change (or the node is gone)."""
    for _ in range(CONFLICT_RETRIES):
        node = await client.get_or_none(path)
        taints = desired_taints(node) if node else None
        if taints is None:
            return None
        body = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": taints}}
        try:
            await client.patch(path, body, MERGE)
        except ApiError as exc:
            if exc.status != 409:
                raise
            continue  # changed meanwhile (a user's taint?): read it again
        log.info("node %s taints: %s", node["metadata"]["name"],
                 ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "none")
        return taints
    raise ApiError(409, "Conflict", f"{path}: taints kept changing over {CONFLICT_RETRIES} attempts")


class TaintController:
    """Watches the Nodes (through the node informer) and corrects their owned taints: every
    node of this process (`node_names`, else just `node_name`), none other."""

    def __init__(self, client: KubeClient, *, node, node_name: str = "", node_names: Sequence[str] = ()):
        self.client = client
        self.names = frozenset(node_names or [node_name])
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        node.handlers.append(self.on_node)

    def on_node(self, kind: str, node: dict, old: dict | None) -> None:
        name = node["metadata"].get("name")
        if kind != "DELETED" and name in self.names and desired_taints(node) is not None:
            self._dirty.add(name)
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                name = self._dirty.pop()
                try:
                    await sync_taints(self.client, f"/api/v1/nodes/{name}")
                except ApiError as exc:
                    log.warning("updating node %s's taints failed: %s; retrying", name, exc)
                    self._dirty.add(name)
                    await asyncio.sleep(2)
