"""Assembles the virtual node's parts and runs them until cancelled."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time

from .controllers.binder import Binder
from .controllers.eventmirror import EventMirror
from ..kubeclient.events import EventRecorder
from ..kubeclient.informer import Informer
from ..kubeclient.client import ApiError, KubeClient
from .kubelet.server import KubeletServer
from .controllers.node import UNREACHABLE_GRACE, NodeAgent, node_labels
from .options import Options
from .controllers.podsync import COMPONENT, PodSync
from .mapping.quota import Capacity
from .controllers.servicesync import ServiceSync
from .mapping.spec import LABEL_CLUSTER_UID, label_value, sandboxpod_name

log = logging.getLogger(__name__)
META_SYNC_WAIT = 5.0


def _pod_key(pod: dict) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def _name_key(obj: dict) -> str:
    return obj["metadata"]["name"]


class VirtualNode:
    def __init__(self, opts: Options, tenant: KubeClient, meta: KubeClient, server_ctx: ssl.SSLContext):
        self.opts = opts
        self.tenant = tenant
        self.meta = meta
        self.server_ctx = server_ctx
        self._provider = None
        self.events = EventRecorder(tenant, component=COMPONENT, host=opts.node_name)
        self.pods = Informer(tenant, "/api/v1/pods", name="tenant pods", key=_pod_key)
        self.sandboxes = Informer(
            meta, f"/apis/sk8s.io/v1alpha1/namespaces/{opts.meta_namespace}/sandboxpods", name="sandboxpods",
            key=_name_key, params={"labelSelector": f"{LABEL_CLUSTER_UID}={label_value(opts.cluster_uid)}"})
        self.binder = Binder(tenant, node_name=opts.node_name, node_labels=node_labels(opts.node_name),
                             events=self.events,
                             capacity=Capacity(opts.max_pods, opts.cpu_millis, opts.memory_bytes,
                                               cpu_limited=opts.cpu_limited, memory_limited=opts.memory_limited))
        self.podsync = PodSync(tenant=tenant, meta=meta, pods=self.pods, sandboxes=self.sandboxes, events=self.events,
                               node_name=opts.node_name, meta_namespace=opts.meta_namespace, cluster=opts.cluster,
                               cluster_uid=opts.cluster_uid, allocatable={"cpu": opts.cpu, "memory": opts.memory})
        self.services = ServiceSync(tenant=tenant, meta=meta, events=self.events, cluster=opts.cluster,
                                    cluster_uid=opts.cluster_uid, meta_namespace=opts.meta_namespace)
        self.pods.handlers += [self.binder.on_pod, self.podsync.on_pod]
        self.event_mirror = EventMirror(tenant, meta, meta_namespace=opts.meta_namespace, sandboxes=self.sandboxes,
                                        pod_for=self.podsync.pod_for, host=opts.node_name)
        self.sandboxes.handlers.append(self.podsync.on_sandbox)
        self.kubelet = KubeletServer(lookup=self.lookup, provider=self.provider, meta_namespace=opts.meta_namespace)
        self.node: NodeAgent | None = None

    def provider(self):
        """Imported on first use: the provider stack (pydantic models) costs start-up time."""
        if self._provider is None:
            from ..providers import make_provider
            self._provider = make_provider(self.opts.provider)
        return self._provider

    async def _warm_provider(self) -> None:
        try:
            await asyncio.to_thread(self.provider)
        except ValueError as exc:
            # Pods still run (the SandboxPod operator runs them); only logs are unavailable.
            log.error("--provider %s: %s; container logs will not be available", self.opts.provider, exc)

    def lookup(self, namespace: str, name: str) -> tuple[dict | None, dict | None]:
        pod = self.pods.get((namespace, name))
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.opts.node_name:
            return None, None
        return pod, self.sandboxes.get(sandboxpod_name(namespace, name))

    def meta_health(self) -> tuple[bool, str]:
        inf = self.sandboxes
        if inf.healthy:
            return True, ""
        if not inf.synced.is_set():
            return False, f"meta-cluster not reached yet: {inf.last_error or 'connecting'}"
        if inf.unhealthy_since is not None and time.monotonic() - inf.unhealthy_since < UNREACHABLE_GRACE:
            return True, ""
        return False, f"meta-cluster unreachable: {inf.last_error}"

    async def tenant_version(self) -> str:
        delay = 0.2
        while True:
            try:
                return (await self.tenant.get("/version"))["gitVersion"]
            except ApiError as exc:
                log.warning("tenant apiserver not answering yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def _retry(self, what: str, call) -> None:
        delay = 0.2
        while True:
            try:
                return await call()
            except ApiError as exc:
                log.warning("%s failed: %s; retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def run(self) -> None:
        t0 = time.monotonic()
        tasks: list[asyncio.Task] = []
        try:
            version, _ = await asyncio.gather(self.tenant_version(),
                                              self.kubelet.start(self.opts.address, self.opts.port, self.server_ctx))
            tasks += [asyncio.create_task(self.sandboxes.run(), name="sandboxpod-informer"),
                      asyncio.create_task(self.pods.run(), name="pod-informer")]
            # Volume sources: acted on once synced, read directly until then (no wait here).
            tasks += [asyncio.create_task(self.podsync.volumes.configmaps.run(), name="configmap-informer"),
                      asyncio.create_task(self.podsync.volumes.secrets.run(), name="secret-informer")]
            try:
                await asyncio.wait_for(self.sandboxes.synced.wait(), META_SYNC_WAIT)
            except asyncio.TimeoutError:
                log.warning("meta-cluster not reachable after %.0fs; registering the node NotReady", META_SYNC_WAIT)
            self.node = NodeAgent(self.tenant, self.opts, kubelet_version=version, meta_health=self.meta_health)
            self.sandboxes.on_health_change = self.node.poke
            await self._retry("registering the node", self.node.register)
            tasks += [asyncio.create_task(self.node.run_lease(), name="lease"),
                      asyncio.create_task(self.node.run_status(), name="node-status")]
            log.info("node %s registered in %.2fs", self.opts.node_name, time.monotonic() - t0)
            # Both caches must be complete before acting: an empty cache would make every
            # SandboxPod look orphaned, or every pod look unbound.
            await asyncio.gather(self.pods.synced.wait(), self.sandboxes.synced.wait())
            self.node.poke()
            tasks += [asyncio.create_task(self.binder.run(), name="binder"),
                      asyncio.create_task(self.podsync.run(), name="podsync"),
                      asyncio.create_task(self.event_mirror.run(), name="sandbox-event-mirror"),
                      asyncio.create_task(self.services.run(), name="services")]
            self._warm = asyncio.create_task(self._warm_provider())
            log.info("virtual node %s in sync: %d pods on the node, %d SandboxPods", self.opts.node_name,
                     len(self.podsync.pod_keys), len(self.sandboxes.store))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a loop that ends is a bug: surface it (non-zero exit)
            raise RuntimeError(f"{', '.join(t.get_name() for t in done)} ended unexpectedly")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.kubelet.stop()
            await asyncio.gather(self.tenant.close(), self.meta.close())
