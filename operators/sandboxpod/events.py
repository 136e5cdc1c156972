"""Kubelet-style events (Unhealthy, BackOff, Killing...) on SandboxPods, counted as the
kubelet's recorder counts them: a repeat of the same reason and message raises `count`
on one Event instead of creating another, so a failing probe every second costs one object.
The virtual node mirrors these onto the tenant pod."""
from __future__ import annotations

import asyncio
import hashlib
import logging

from .. import API_VERSION, kube
from ..conditions import now_rfc3339
from ..providers.sandbox import SandboxRef

log = logging.getLogger(__name__)
COMPONENT = "sk8s-sandbox-kubelet"
MAX_IN_FLIGHT = 64


def event_name(ref: SandboxRef, reason: str, message: str, field_path: str | None = None) -> str:
    """Deterministic per (sandbox, container, reason, message): repeats update one Event."""
    key = f"{ref.uid}\0{reason}\0{message}" + (f"\0{field_path}" if field_path else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{ref.name[:200]}.{digest}"


def build_event(ref: SandboxRef, type_: str, reason: str, message: str, *, count: int, first: str,
                now: str, host: str, field_path: str | None = None) -> dict:
    involved = {"apiVersion": API_VERSION, "kind": "SandboxPod", "name": ref.name, "namespace": ref.namespace,
                "uid": ref.uid}
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name(ref, reason, message, field_path), "namespace": ref.namespace},
        "involvedObject": involved,
        "reason": reason, "message": message[:1024], "type": type_,
        "source": {"component": COMPONENT, "host": host},
        "reportingComponent": COMPONENT, "reportingInstance": host,
        "firstTimestamp": first, "lastTimestamp": now, "count": count,
    }


class SandboxEvents:
    def __init__(self, host: str):
        self.host = host
        self._counts: dict[str, tuple[int, str]] = {}  # event name -> (count, first timestamp)
        self._tasks: set[asyncio.Task] = set()

    def __call__(self, ref: SandboxRef, type_: str, reason: str, message: str, *,
                 field_path: str | None = None) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.debug("dropping event %s on %s: too many in flight", reason, ref.name)
            return
        now = now_rfc3339()
        name = event_name(ref, reason, message, field_path)
        count, first = self._counts.get(name, (0, now))
        self._counts[name] = (count + 1, first)
        body = build_event(ref, type_, reason, message, count=count + 1, first=first, now=now, host=self.host,
                           field_path=field_path)
        task = asyncio.create_task(self._post(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, ref: SandboxRef) -> None:
        prefix = f"{ref.name[:200]}."
        for name in [n for n in self._counts if n.startswith(prefix)]:
            self._counts.pop(name, None)

    @staticmethod
    async def _post(body: dict) -> None:
        meta = body["metadata"]
        try:
            if body["count"] == 1:
                await kube.create_event(meta["namespace"], body)
            else:
                await kube.patch_event(meta["namespace"], meta["name"],
                                       {"count": body["count"], "lastTimestamp": body["lastTimestamp"]})
        except kube.ApiError as exc:
            try:
                await SandboxEvents._retry(body, exc)
            except Exception as again:  # events are best effort: never fail the kubelet for one
                log.debug("event %s not recorded: %s", body["reason"], again)
        except Exception as exc:
            log.debug("event %s not recorded: %s", body["reason"], exc)

    @staticmethod
    async def _retry(body: dict, exc: kube.ApiError) -> None:
        meta = body["metadata"]
        if exc.status == 409:  # posted before an operator restart: carry on counting there
            await kube.patch_event(meta["namespace"], meta["name"],
                                   {"count": body["count"], "lastTimestamp": body["lastTimestamp"]})
        elif exc.status == 404 and body["count"] > 1:  # expired meanwhile (events have a TTL)
            await kube.create_event(meta["namespace"], {**body, "count": 1})
        else:
            log.debug("event %s not recorded: %s", body["reason"], exc)
