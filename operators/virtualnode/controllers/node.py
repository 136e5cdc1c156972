"""The Node object and its Lease: how the tenant cluster sees the virtual node.

The Lease is the heartbeat (every 10 s, like a kubelet's); the Node status is written
only when it changes or once a minute, so load stays flat however many pods run.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import platform
import time
from typing import Callable

from ...aio import wait_event
from ...conditions import now_rfc3339
from ...kubeclient.client import MERGE, ApiError, KubeClient
from ..nodeset import ZONE_LABEL, NodeShare
from ..options import Options

log = logging.getLogger(__name__)

LEASE_SECONDS = 40
RENEW_SECONDS = 10
STATUS_SECONDS = 60
# A meta-cluster that is briefly unreachable (a reconnecting watch) does not make the
# node NotReady: only an outage longer than this does.
UNREACHABLE_GRACE = 30
EPHEMERAL_STORAGE = "100Gi"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def node_labels(node_name: str, zone: str = "") -> dict[str, str]:
    """A kubelet's well-known labels; with several nodes each also names its zone."""
    return {
        **({ZONE_LABEL: zone} if zone else {}),
        "type": "virtual-kubelet",
        "kubernetes.io/role": "agent",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _ARCH.get(platform.machine(), "amd64"),
        "kubernetes.io/hostname": node_name,
        "node.kubernetes.io/instance-type": "sk8s-sandbox",
    }


def _cond(type_: str, ok: bool, reason: str, message: str, prev: dict[str, dict], now: str) -> dict:
    status = "True" if ok else "False"
    old = prev.get(type_) or {}
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since or now}


DECLARED_FEATURES = ("ExtendWebSocketsToKubelet",)  # sorted, as the API requires


def node_status(opts: Options, *, kubelet_version: str, ready: bool, not_ready_message: str = "",
                prev_conditions: list[dict] | None = None, now: str | None = None,
                share: NodeShare | None = None) -> dict:
    """`share`: which of the process's nodes (default the first), with its part of the capacity."""
    share = share or opts.nodes[0]
    now = now or now_rfc3339()
    prev = {c.get("type"): c for c in prev_conditions or []}
    resources = {"cpu": share.cpu, "memory": share.memory, "pods": str(share.pods),
                 "ephemeral-storage": EPHEMERAL_STORAGE}
    ready_cond = (_cond("Ready", True, "KubeletReady", "virtual node is posting ready status", prev, now)
                  if ready else _cond("Ready", False, "KubeletNotReady", not_ready_message, prev, now))
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": [
            _cond("MemoryPressure", False, "KubeletHasSufficientMemory", "sandboxes have their own memory",
                  prev, now),
            _cond("DiskPressure", False, "KubeletHasNoDiskPressure", "sandboxes have their own disk", prev, now),
            _cond("PIDPressure", False, "KubeletHasSufficientPID", "sandboxes have their own PIDs", prev, now),
            ready_cond,
        ],
        "addresses": [{"type": "InternalIP", "address": opts.address},
                      {"type": "Hostname", "address": share.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": opts.port}},
        # The apiserver then passes kubectl's exec/attach WebSockets on to the kubelet API
        # as they are instead of translating them to SPDY (see remotecommand.py).
        "declaredFeatures": list(DECLARED_FEATURES),
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": os.uname().release,
            "osImage": "sk8s sandbox",
            "containerRuntimeVersion": f"sk8s://{opts.provider}",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": _ARCH.get(platform.machine(), "amd64"),
        },
    }


def _significant(status: dict) -> tuple:
    """What counts as a change (heartbeat times do not)."""
    return (tuple((c["type"], c["status"], c.get("message")) for c in status["conditions"]),
            tuple(sorted(status["capacity"].items())), tuple(a["address"] for a in status["addresses"]),
            status["daemonEndpoints"]["kubeletEndpoint"]["Port"], status["nodeInfo"]["kubeletVersion"])


def micro_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    def __init__(self, client: KubeClient, opts: Options, *, kubelet_version: str,
                 meta_health: Callable[[], tuple[bool, str]], share: NodeShare | None = None):
        self.client = client
        self.opts = opts
        self.share = share or opts.nodes[0]
        self.name = self.share.name
        self.labels = node_labels(self.name, self.share.zone)
        self.kubelet_version = kubelet_version
        self.meta_health = meta_health
        self.uid: str | None = None
        self._conditions: list[dict] = []
        self._last: tuple | None = None
        self._last_write = 0.0
        self._wake = asyncio.Event()
        self.path = f"/api/v1/nodes/{self.name}"

    def poke(self) -> None:
        """Something the status shows may have changed (the meta-cluster's reachability)."""
        self._wake.set()
        # Re-check when the grace period of an outage is over.
        asyncio.get_running_loop().call_later(UNREACHABLE_GRACE + 1, self._wake.set)

    def _status(self) -> dict:
        ok, message = self.meta_health()
        return node_status(self.opts, kubelet_version=self.kubelet_version, ready=ok,
                           not_ready_message=message, prev_conditions=self._conditions, share=self.share)

    async def register(self) -> None:
        status = self._status()
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": self.labels},
                "spec": {}, "status": status}
        try:
            node = await self.client.create("/api/v1/nodes", body)
            log.info("registered node %s", self.name)
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = await self.client.patch(self.path, {"metadata": {"labels": self.labels}})
            # Keep the transition times of conditions that did not change across our restart.
            self._conditions = (node.get("status") or {}).get("conditions") or []
            status = self._status()
            node = await self.client.patch(self.path + "/status", {"status": status}, MERGE)
            log.info("node %s exists; refreshed its labels and status", self.name)
        self.uid = node["metadata"]["uid"]
        self._conditions = status["conditions"]
        self._last = _significant(status)
        self._last_write = time.monotonic()

    async def refresh(self, force: bool = False) -> None:
        status = self._status()
        sig = _significant(status)
        if not force and sig == self._last and time.monotonic() - self._last_write < STATUS_SECONDS:
            return
        try:
            await self.client.patch(self.path + "/status", {"status": status}, MERGE)
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.warning("node %s was deleted; registering it again", self.name)
            await self.register()
            return
        if sig != self._last:
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            log.info("node %s Ready=%s %s", self.name, ready["status"], ready.get("message", ""))
        self._conditions = status["conditions"]
        self._last = sig
        self._last_write = time.monotonic()

    async def run_status(self) -> None:
        while True:
            await wait_event(self._wake, STATUS_SECONDS)
            self._wake.clear()
            try:
                await self.refresh()
            except ApiError as exc:
                log.warning("node status update failed: %s", exc)
                await asyncio.sleep(2)
                self._wake.set()

    async def run_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        while True:
            spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": micro_time()}
            delay = RENEW_SECONDS
            try:
                try:
                    await self.client.patch(path, {"spec": spec})
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    owner = ([{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}]
                             if self.uid else [])
                    await self.client.create(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.name, "namespace": "kube-node-lease",
                                      "ownerReferences": owner},
                         "spec": {**spec, "acquireTime": spec["renewTime"]}})
            except ApiError as exc:
                # Retry soon: the lease expires after 40 s and nothing else vouches for the node.
                log.warning("renewing lease failed: %s", exc)
                delay = 1
            await asyncio.sleep(delay)
