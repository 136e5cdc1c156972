"""Binds the tenant's new pods to the virtual node, in place of kube-scheduler.

With one node there is nothing to choose, so scheduling is a quota check and a
pods/binding call. Like the scheduler, it "assumes" a pod's resources as soon as it
decides to bind, so concurrent bindings never overcommit the quota, and it retries pods
that did not fit whenever a pod goes away. Every RESYNC_SECONDS it also takes every
unbound pod from its cache again, as a client-go informer's resync would: a binding that
failed in a way nobody retried (an answer lost while the tenant apiserver restarted, a 404
from an apiserver still starting) is tried again (churn run: a pod stayed Pending,
unbound, for minutes).
"""
from __future__ import annotations

import asyncio
import logging

from ...aio import wait_event
from ...kubeclient.events import EventRecorder
from ...kubeclient.client import STRATEGIC, ApiError, KubeClient
from ...kubeclient.informer import Informer
from ..mapping.nodeaffinity import node_mismatch
from ..mapping.quota import Capacity, Resources, check_fit, is_terminal, pod_requests

log = logging.getLogger(__name__)
SCHEDULERS = (None, "", "default-scheduler")
BIND_CONCURRENCY = 16
RESYNC_SECONDS = 10.0
COMPONENT = "sk8s-virtual-node-binder"


def wants_binding(pod: dict) -> bool:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName") in SCHEDULERS
            and not meta.get("deletionTimestamp") and not is_terminal(pod)
            # Pods gated by schedulingGates wait for whoever owns the gates to remove them.
            and not spec.get("schedulingGates"))


def selector_mismatch(pod: dict, labels: dict[str, str], node_name: str = "") -> str | None:
    """nodeSelector and required node affinity against the node's labels (nodeaffinity.py)."""
    return node_mismatch(pod, {"metadata": {"name": node_name, "labels": labels}})


def tolerates(toleration: dict, taint: dict) -> bool:
    """core/v1 Toleration.ToleratesTaint: empty effect or key match any; Exists ignores the value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def taint_mismatch(pod: dict, node: dict) -> str | None:
    """The scheduler's NodeUnschedulable and TaintToleration filters: a cordoned node, or a
    NoSchedule/NoExecute taint the pod does not tolerate, keeps it Pending (PreferNoSchedule
    is only a preference)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not any(
            tolerates(t, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}) for t in tolerations):
        return "0/1 nodes are available: 1 node(s) were unschedulable."
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return ("0/1 nodes are available: 1 node(s) had untolerated taint "
                    f"{{{taint.get('key')}: {taint.get('value') or ''}}}.")
    return None


def _order(pod: dict) -> tuple:
    meta = pod["metadata"]
    return (-((pod.get("spec") or {}).get("priority") or 0), meta.get("creationTimestamp") or "",
            meta["namespace"], meta["name"])


class Binder:
    def __init__(self, client: KubeClient, *, pods: Informer, node: Informer, node_name: str, capacity: Capacity,
                 node_labels: dict[str, str], events: EventRecorder):
        self.client = client
        self.node_name = node_name
        self.capacity = capacity
        self.node_labels = node_labels
        self.events = events
        self.pending: dict[str, dict] = {}       # uid -> unbound pod
        self.usage: dict[str, Resources] = {}    # uid -> requests of pods on (or being bound to) the node
        self.in_flight: set[str] = set()
        self._deleted_in_flight: set[str] = set()
        self._unschedulable: dict[str, str] = {}  # uid -> message last reported
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(BIND_CONCURRENCY)
        self._tasks: set[asyncio.Task] = set()
        self.node: dict | None = None             # the Node as last seen: its taints decide too
        self.pods = pods
        pods.handlers.append(self.on_pod)
        node.handlers.append(self.on_node)

    # --- fed by the tenant pod informer ----------------------------------------
    def on_pod(self, kind: str, pod: dict, old: dict | None) -> None:
        uid = pod["metadata"]["uid"]
        gone = kind == "DELETED"
        if gone and uid in self.in_flight:
            self._deleted_in_flight.add(uid)
        if not gone and (pod.get("spec") or {}).get("nodeName") == self.node_name and not is_terminal(pod):
            self.usage[uid] = pod_requests(pod)
        elif uid in self.usage and (gone or uid not in self.in_flight):
            del self.usage[uid]
            if self.pending:
                self._wake.set()  # capacity freed: pods that did not fit may fit now
        if not gone and wants_binding(pod):
            self.pending[uid] = pod
            self._wake.set()
        else:
            self.pending.pop(uid, None)
            if gone or (pod.get("spec") or {}).get("nodeName"):
                self._unschedulable.pop(uid, None)
            if gone:
                self.events.forget(uid)

    def on_node(self, kind: str, node: dict, old: dict | None) -> None:
        if node["metadata"].get("name") != self.node_name:
            return
        self.node = None if kind == "DELETED" else node
        if self.pending:
            self._wake.set()  # a taint removed or tolerated now

    def used(self) -> tuple[Resources, int]:
        total = Resources()
        for r in self.usage.values():
            total += r
        return total, len(self.usage)

    # --- the loop -----------------------------------------------------------------
    def resync(self) -> None:
        """Every unbound pod of the cache is pending again (on_pod keeps the rest right)."""
        for pod in self.pods.items():
            uid = pod["metadata"]["uid"]
            if wants_binding(pod) and uid not in self.pending and uid not in self.in_flight:
                self.pending[uid] = pod
        if self.pending:
            self._wake.set()

    async def run(self) -> None:
        while True:
            if not await wait_event(self._wake, RESYNC_SECONDS):
                self.resync()
                if not self._wake.is_set():
                    continue
            self._wake.clear()
            if self.node is None:
                continue  # not registered (or not seen) yet: woken when it is
            for pod in sorted(self.pending.values(), key=_order):
                uid = pod["metadata"]["uid"]
                if uid in self.in_flight:
                    continue
                # The Node's labels as the apiserver has them (a tenant may add its own).
                labels = {**self.node_labels, **((self.node.get("metadata") or {}).get("labels") or {})}
                reason = selector_mismatch(pod, labels, self.node_name) or taint_mismatch(pod, self.node)
                if reason is None:
                    used, count = self.used()
                    reason = check_fit(self.capacity, used, count, pod_requests(pod))
                if reason:
                    self._report_unschedulable(pod, reason)
                    continue
                self.in_flight.add(uid)
                self.usage[uid] = pod_requests(pod)
                task = asyncio.create_task(self._bind(pod))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _bind(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}}
        bound = False
        try:
            async with self._limit:
                await self.client.create(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
            bound = True
            self.pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
            self.events.emit(pod, "Normal", "Scheduled",
                             f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
                             component=COMPONENT)
        except ApiError as exc:
            if exc.status in (404, 409):
                # Deleted, or bound meanwhile (by us before a restart, or by someone else):
                # the informer brings the truth; nothing to retry.
                self.pending.pop(uid, None)
                log.debug("binding %s/%s: %s", meta["namespace"], meta["name"], exc)
            else:
                log.warning("binding %s/%s failed: %s; retrying", meta["namespace"], meta["name"], exc)
                asyncio.get_running_loop().call_later(1.0, self._wake.set)
        except Exception:  # anything else: the resync takes the pod again
            log.exception("binding %s/%s failed", meta["namespace"], meta["name"])
        finally:
            self.in_flight.discard(uid)
            if not bound or uid in self._deleted_in_flight:
                self.usage.pop(uid, None)
            self._deleted_in_flight.discard(uid)

    def _report_unschedulable(self, pod: dict, message: str) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if self._unschedulable.get(uid) == message:
            return
        self._unschedulable[uid] = message
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or []
                     if c.get("type") == "PodScheduled"), {})
        self.events.emit(pod, "Warning", "FailedScheduling", message, component=COMPONENT)
        if cond.get("status") == "False" and cond.get("message") == message:
            return  # reported before a restart
        log.info("pod %s/%s unschedulable: %s", meta["namespace"], meta["name"], message)
        task = asyncio.create_task(self._write_unschedulable(pod, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_unschedulable(self, pod: dict, message: str) -> None:
        from ...conditions import now_rfc3339
        meta = pod["metadata"]
        patch = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message, "lastProbeTime": None,
                                            "lastTransitionTime": now_rfc3339()}]}}
        try:
            # Strategic merge: conditions merge by type, leaving the others as they are.
            await self.client.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", patch,
                                    STRATEGIC)
        except ApiError as exc:
            log.debug("marking %s/%s unschedulable: %s", meta["namespace"], meta["name"], exc)
            self._unschedulable.pop(meta["uid"], None)

