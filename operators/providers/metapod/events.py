"""The meta kubelet's events on sandbox Pods, relayed to the provider's event sink (the
SandboxPod operator posts them on the SandboxPod, and the virtual node mirrors those onto
the tenant's pod): what `kubectl describe pod` shows a tenant of its containers (Pulling,
Pulled, Created, Started, Killing, BackOff, Unhealthy, Failed, hook failures).

Only the kubelet's container events pass, by reason: the scheduler's (Scheduled names the
meta node; FailedScheduling counts the meta-cluster's nodes) and anything else about the
meta-cluster stay there. One watch of Pod events across namespaces (fieldSelector
involvedObject.kind=Pod), from now on: events from before the operator started are not
replayed (the sandboxes' status says where they are). Each event seen (created, or counted
again) is one call of the sink, which keeps its own count.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ...kubeclient.client import ApiError, KubeClient
from ..sandbox import EventSink, SandboxRef
from .podstatus import ref_from_pod

log = logging.getLogger(__name__)
KUBELET_REASONS = ("Pulling", "Pulled", "Created", "Started", "Killing", "BackOff", "Unhealthy", "Failed",
                   "FailedPostStartHook", "FailedPreStopHook", "ProbeWarning", "ErrImageNeverPull",
                   "InspectFailed", "ExceededGracePeriod")
EVENTS_PATH = "/api/v1/events"
SELECTOR = "involvedObject.kind=Pod"
WATCH_SECONDS = 300
BACKOFF_MAX = 30.0


def relayed(event: dict, pod: dict | None) -> tuple[SandboxRef, str, str, str, str | None] | None:
    """(sandbox, type, reason, message, field path) of a meta event to pass on, or None."""
    involved = event.get("involvedObject") or {}
    if pod is None or event.get("reason") not in KUBELET_REASONS:
        return None
    meta = pod.get("metadata") or {}
    if involved.get("name") != meta.get("name") or (involved.get("uid") and involved["uid"] != meta.get("uid")):
        return None
    ref = ref_from_pod(pod)
    if ref is None:
        return None
    return ref, event.get("type") or "Normal", event["reason"], event.get("message") or "", involved.get("fieldPath")


async def relay_events(client: KubeClient, pod_of: Callable[[str, str], dict | None], sink: EventSink) -> None:
    """Watch Pod events for ever (from the current resource version), passing each sandbox
    Pod's kubelet events to `sink`; `pod_of(namespace, name)` is the Pod as the provider's
    watch has it (None: not one of this installation's sandboxes)."""
    backoff, rv = 0.5, None
    while True:
        try:
            if rv is None:
                rv = (await client.get(EVENTS_PATH, fieldSelector=SELECTOR, limit="1"))["metadata"]["resourceVersion"]
            async for ev in client.watch(EVENTS_PATH, {"fieldSelector": SELECTOR}, rv, WATCH_SECONDS):
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    rv = None  # expired: from now on again
                    break
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if ev.get("type") in ("ADDED", "MODIFIED"):
                    involved = obj.get("involvedObject") or {}
                    out = relayed(obj, pod_of(involved.get("namespace") or "", involved.get("name") or ""))
                    if out is not None:
                        ref, type_, reason, message, field_path = out
                        sink(ref, type_, reason, message, field_path=field_path)
            backoff = 0.5
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            rv = None if exc.status == 410 else rv
            log.warning("watching the sandbox Pods' events: %s; again in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
        except Exception:  # a malformed event: never let the relay die
            log.exception("relaying the sandbox Pods' events; again in %.1fs", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
