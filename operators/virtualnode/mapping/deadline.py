"""spec.activeDeadlineSeconds, as the kubelet's activeDeadlineHandler enforces it (pure).

The deadline counts from the pod's status.startTime, which this node wrote, and is read
from the tenant pod on every pass: the apiserver lets a user shorten it on a running pod,
and the next pass sees the new value. A pod past it is killed (its sandbox deleted with
the pod's grace period) and ends Failed with the kubelet's reason and message.
"""
from __future__ import annotations

import datetime as dt

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"
# What the kubelet reports for a container it cannot inspect any more once its pod has
# ended (kubelet_pods.go): the sandbox is gone before its last exit is read.
UNKNOWN_REASON = "ContainerStatusUnknown"
UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def seconds_left(pod: dict, now: float) -> float | None:
    """Seconds until the pod's active deadline (<= 0: past it); None without a deadline
    or before the pod has a start time (upstream's pastActiveDeadline)."""
    seconds = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    start = _parse((pod.get("status") or {}).get("startTime"))
    if seconds is None or start is None:
        return None
    return start + int(seconds) - now
