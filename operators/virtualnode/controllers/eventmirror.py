"""Mirrors the sandbox kubelet's events (Unhealthy, BackOff, Killing...) from the
SandboxPods in the meta-cluster onto their tenant pods, where `kubectl describe pod` and
`kubectl get events` show them. Each meta Event maps to one tenant Event whose count
follows, so a probe failing every second stays one line with a growing count."""
from __future__ import annotations

import asyncio
import logging

from ...kubeclient.events import MAX_IN_FLIGHT
from ...kubeclient.informer import Informer
from ...kubeclient.client import MERGE, ApiError, KubeClient
from ..mapping.podstatus import tenant_message
from ..mapping.spec import pod_uid_of

log = logging.getLogger(__name__)
SOURCE = "sk8s-sandbox-kubelet"  # operators.sandboxpod.events.COMPONENT
TENANT_COMPONENT = "kubelet"


def tenant_event(meta_event: dict, pod: dict, sbp: dict, host: str) -> dict:
    """The tenant pod's Event for one event of its SandboxPod (pure)."""
    meta = pod["metadata"]
    suffix = meta_event["metadata"]["name"].rsplit(".", 1)[-1]
    involved = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "namespace": meta["namespace"],
                "uid": meta["uid"]}
    field_path = (meta_event.get("involvedObject") or {}).get("fieldPath")
    if field_path:  # the container, as the kubelet names it: spec.containers{app}
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name'][:200]}.{suffix}", "namespace": meta["namespace"]},
        "involvedObject": involved,
        "reason": meta_event.get("reason"), "type": meta_event.get("type") or "Normal",
        "message": tenant_message(meta_event.get("message") or "", sbp, pod),
        "source": {"component": TENANT_COMPONENT, "host": host},
        "reportingComponent": TENANT_COMPONENT, "reportingInstance": host,
        "firstTimestamp": meta_event.get("firstTimestamp"), "lastTimestamp": meta_event.get("lastTimestamp"),
        "count": int(meta_event.get("count") or 1),
    }


class EventMirror:
    def __init__(self, tenant: KubeClient, *, events: Informer, sandboxes: Informer, pod_for, host: str):
        self.tenant = tenant
        self.sandboxes = sandboxes
        self.pod_for = pod_for
        self.host = host
        # The meta-cluster's Events on SandboxPods; started by the VirtualNode once pods and
        # SandboxPods are in sync (an event dropped for want of its pod is not delivered again).
        events.handlers.append(self.on_event)
        self._posted: dict[str, int] = {}  # tenant event name -> count posted
        self._tasks: set[asyncio.Task] = set()

    def on_event(self, kind: str, ev: dict, old: dict | None) -> None:
        if kind == "DELETED" or (ev.get("source") or {}).get("component") != SOURCE:
            return
        involved = ev.get("involvedObject") or {}
        sbp = self.sandboxes.get(involved.get("name"))
        pod = self.pod_for(involved.get("name"))
        if sbp is None or pod is None or sbp["metadata"]["uid"] != involved.get("uid") \
                or pod_uid_of(sbp) != pod["metadata"]["uid"]:
            return  # not (or no longer) one of this node's pods
        # The node the pod is on (one process may serve several).
        body = tenant_event(ev, pod, sbp, (pod.get("spec") or {}).get("nodeName") or self.host)
        name = body["metadata"]["name"]
        if self._posted.get(name, 0) >= body["count"] or len(self._tasks) >= MAX_IN_FLIGHT:
            return
        self._posted[name] = body["count"]
        task = asyncio.create_task(self._post(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, body: dict) -> None:
        meta = body["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/events"
        try:
            try:
                await self.tenant.create(path, body)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                await self.tenant.patch(f"{path}/{meta['name']}", {
                    "count": body["count"], "lastTimestamp": body["lastTimestamp"]}, MERGE)
        except ApiError as exc:
            log.debug("event %s on %s/%s not mirrored: %s", body["reason"], meta["namespace"],
                      body["involvedObject"]["name"], exc)
