"""Events on tenant pods (what `kubectl describe pod` shows), written off the hot path."""
from __future__ import annotations

import asyncio
import logging
import time

from ..conditions import now_rfc3339
from .client import ApiError, KubeClient

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 64


class EventRecorder:
    def __init__(self, client: KubeClient, *, component: str, host: str, hosts: frozenset[str] = frozenset()):
        """`hosts`: the nodes this recorder speaks for when it serves several: an event on a pod
        bound to one of them names that node as its source, as that node's kubelet would."""
        self.client = client
        self.component = component
        self.host = host
        self.hosts = hosts
        self._tasks: set[asyncio.Task] = set()
        # One event per pod, reason and message: repeated reconciles must not flood the API.
        self._seen: dict[str, set[tuple[str, str]]] = {}

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)

    def emit(self, pod: dict, type_: str, reason: str, message: str, *, component: str | None = None,
             kind: str = "Pod") -> None:
        meta = pod["metadata"]
        seen = self._seen.setdefault(meta["uid"], set())
        if (reason, message) in seen:
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.debug("dropping event %s for %s/%s: too many in flight", reason, meta["namespace"], meta["name"])
            return
        seen.add((reason, message))
        node = (pod.get("spec") or {}).get("nodeName")
        host = node if node in self.hosts else self.host
        task = asyncio.create_task(self._post(meta, type_, reason, message, component or self.component, kind,
                                              host))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, meta: dict, type_: str, reason: str, message: str, component: str,
                    kind: str = "Pod", host: str | None = None) -> None:
        host = host or self.host
        now = now_rfc3339()
        name = f"{meta['name'][:200]}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": kind, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": component, "host": host},
            "reportingComponent": component, "reportingInstance": host,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await self.client.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except ApiError as exc:
            log.debug("event %s on %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], exc)
