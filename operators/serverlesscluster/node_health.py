"""The virtual node's Node as its cluster should see it while the virtual node is down.

A tenant runs no node lifecycle controller (it would evict or un-ready pods that live in
sandboxes, not on the node), so nobody else would notice that the node stopped posting
status: the health timer does, and writes what that controller would have written.
"""
from __future__ import annotations

import datetime as dt

from ..conditions import now_rfc3339

# The node lifecycle controller's words (pkg/controller/nodelifecycle).
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# A virtual node (re)started less than this long ago is not judged by its lease yet.
LEASE_GRACE = 60.0


def _parse(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_expired(lease: dict | None, now: dt.datetime) -> bool:
    """True when the lease was not renewed within its duration (a hung virtual node)."""
    spec = (lease or {}).get("spec") or {}
    renewed = _parse(spec.get("renewTime"))
    if renewed is None:
        return False  # never renewed yet: the start-up, not an outage
    return now - renewed > dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 40))


def unknown_status_patch(conditions: list[dict], message: str = UNKNOWN_MESSAGE, now: str | None = None) -> dict | None:
    """A status patch turning the node's conditions Unknown, or None if they already are."""
    now = now or now_rfc3339()
    by_type = {c.get("type"): c for c in conditions or []}
    if all((by_type.get(t) or {}).get("status") == "Unknown" for t in NODE_CONDITIONS):
        return None
    out = []
    for t in NODE_CONDITIONS:
        old = by_type.get(t) or {}
        out.append({"type": t, "status": "Unknown", "reason": UNKNOWN_REASON, "message": message,
                    "lastHeartbeatTime": old.get("lastHeartbeatTime") or now,
                    "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == "Unknown" else now})
    return {"status": {"conditions": out}}
