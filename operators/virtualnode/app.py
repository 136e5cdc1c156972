"""Assembles the virtual node's parts and runs them until cancelled."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time

from .controllers.binder import Binder
from .controllers.eventmirror import EventMirror
from ..kubeclient.events import EventRecorder
from ..kubeclient.client import ApiError, KubeClient
from .kubelet.server import KubeletServer
from .controllers.node import UNREACHABLE_GRACE, NodeAgent, node_labels
from .controllers.nodetaints import TaintController
from .options import SCHEDULER_EXTERNAL, Options
from .controllers.podsync import COMPONENT, PodSync
from .mapping.quota import Capacity
from .controllers.servicesync import ServiceSync
from .mapping.spec import sandboxpod_name
from .informers import NodeInformers
from .egress.proxy import EgressProxy
from .egress.ranges import VpcPolicy

log = logging.getLogger(__name__)
META_SYNC_WAIT = 5.0


def _start(informers) -> list[asyncio.Task]:
    return [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers]


class VirtualNode:
    def __init__(self, opts: Options, tenant: KubeClient, meta: KubeClient, server_ctx: ssl.SSLContext):
        self.opts = opts
        self.tenant = tenant
        self.meta = meta
        self.server_ctx = server_ctx
        self._streams = None
        self.nodes = opts.nodes  # every Node this process registers and serves (nodeset.py)
        self.node_names = frozenset(n.name for n in self.nodes)
        self.events = EventRecorder(tenant, component=COMPONENT, host=opts.node_name, hosts=self.node_names)
        self.informers = NodeInformers.create(tenant, meta, meta_namespace=opts.meta_namespace,
                                              cluster_uid=opts.cluster_uid, node_name=opts.node_name,
                                              all_nodes=len(self.nodes) > 1)
        self.pods, self.sandboxes = self.informers.pods, self.informers.sandboxes
        inf = self.informers
        # Each controller registers its handlers on the informers it is given. With an
        # external scheduler (several nodes) there is no binder: it would race the scheduler.
        self.binder = None if opts.scheduler == SCHEDULER_EXTERNAL else Binder(
            tenant, pods=inf.pods, node=inf.node, node_name=opts.node_name,
            node_labels=node_labels(opts.node_name), events=self.events,
            capacity=Capacity(opts.max_pods, opts.cpu_millis, opts.memory_bytes,
                              cpu_limited=opts.cpu_limited, memory_limited=opts.memory_limited))
        self.podsync = PodSync(tenant=tenant, meta=meta, pods=inf.pods, sandboxes=inf.sandboxes,
                               configmaps=inf.configmaps, secrets=inf.secrets, events=self.events,
                               node_name=opts.node_name, meta_namespace=opts.meta_namespace, cluster=opts.cluster,
                               cluster_uid=opts.cluster_uid, allocatable={"cpu": opts.cpu, "memory": opts.memory},
                               services=inf.services,
                               nodes={n.name: {"cpu": n.cpu, "memory": n.memory} for n in self.nodes},
                               provider=opts.provider)
        self.services = ServiceSync(tenant=tenant, meta=meta, services=inf.services, slices=inf.slices,
                                    servicelbs=inf.servicelbs, events=self.events, cluster=opts.cluster,
                                    cluster_uid=opts.cluster_uid, meta_namespace=opts.meta_namespace,
                                    service_cidr=opts.service_cidr, pods=inf.pods, provider=opts.provider)
        self.event_mirror = EventMirror(tenant, events=inf.sandbox_events, sandboxes=inf.sandboxes,
                                        pod_for=self.podsync.pod_for, host=opts.node_name)
        self.kubelet = KubeletServer(lookup=self.lookup, streams=self.streams, meta_namespace=opts.meta_namespace)
        self.agents: list[NodeAgent] = []
        # In place of the node-lifecycle controller, which the tenant controller-manager does not run.
        self.taints = TaintController(tenant, node=inf.node, node_names=sorted(self.node_names))
        self.egress = self._egress_proxy(opts)

    @staticmethod
    def _egress_proxy(opts: Options) -> EgressProxy | None:
        """The tenant apiserver's way to its webhooks, aggregated APIs and this kubelet: its
        own VPC and this node's endpoint only (egress/policy.py says why)."""
        if not opts.egress_socket:
            return None
        from ..providers import make_vpc_finder
        try:
            find = make_vpc_finder(opts.provider, meta_kubeconfig=opts.meta_kubeconfig,
                                   meta_namespace=opts.meta_namespace)
        except ValueError as exc:  # no proxy: the apiserver's egress fails closed ("no such file")
            log.error("--provider %s: %s; the tenant apiserver's egress proxy is not started", opts.provider, exc)
            return None
        return EgressProxy(opts.egress_socket, VpcPolicy(find, opts.cluster_uid, (opts.address, opts.port)))

    def streams(self):
        """The provider's streaming side only (this process never runs sandboxes), imported
        on first use: the provider stack (pydantic models) costs start-up time."""
        if self._streams is None:
            from ..providers import make_streams
            self._streams = make_streams(self.opts.provider, meta_kubeconfig=self.opts.meta_kubeconfig)
        return self._streams

    async def _warm_provider(self) -> None:
        try:
            await asyncio.to_thread(self.streams)
        except ValueError as exc:
            # Pods still run (the SandboxPod operator runs them); only logs are unavailable.
            log.error("--provider %s: %s; container logs will not be available", self.opts.provider, exc)

    def lookup(self, namespace: str, name: str) -> tuple[dict | None, dict | None]:
        pod = self.pods.get((namespace, name))
        # Every Node of this process shares the one kubelet endpoint: a pod bound to any of them.
        if pod is None or (pod.get("spec") or {}).get("nodeName") not in self.node_names:
            return None, None
        return pod, self.sandboxes.get(sandboxpod_name(namespace, name))

    @property
    def node(self) -> NodeAgent | None:
        """The first Node's agent (the only one unless spec.virtualNodes > 1)."""
        return self.agents[0] if self.agents else None

    def poke_nodes(self) -> None:
        for agent in self.agents:
            agent.poke()

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
            if self.egress:
                await self.egress.start()
            version, _ = await asyncio.gather(self.tenant_version(),
                                              self.kubelet.start(self.opts.address, self.opts.port, self.server_ctx))
            # Every informer is started here and nowhere else (informers.py says which when).
            tasks += _start(self.informers.early)
            try:
                await asyncio.wait_for(self.sandboxes.synced.wait(), META_SYNC_WAIT)
            except asyncio.TimeoutError:
                log.warning("meta-cluster not reachable after %.0fs; registering the node NotReady", META_SYNC_WAIT)
            self.agents = [NodeAgent(self.tenant, self.opts, kubelet_version=version, meta_health=self.meta_health,
                                     share=share) for share in self.nodes]
            self.sandboxes.on_health_change = self.poke_nodes
            for agent in self.agents:
                await self._retry(f"registering node {agent.name}", agent.register)
                tasks += [asyncio.create_task(agent.run_lease(), name=f"lease {agent.name}"),
                          asyncio.create_task(agent.run_status(), name=f"node-status {agent.name}")]
            tasks.append(asyncio.create_task(self.taints.run(), name="node-taints"))
            log.info("node(s) %s registered in %.2fs", ", ".join(a.name for a in self.agents), time.monotonic() - t0)
            # Both caches must be complete before acting: an empty cache would make every
            # SandboxPod look orphaned, or every pod look unbound.
            await asyncio.gather(self.pods.synced.wait(), self.sandboxes.synced.wait())
            self.poke_nodes()
            tasks += _start(self.informers.late)
            if self.binder:
                tasks.append(asyncio.create_task(self.binder.run(), name="binder"))
            tasks += [asyncio.create_task(self.podsync.run(), name="podsync"),
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
            if self.egress:
                await self.egress.stop()
            await asyncio.gather(self.tenant.close(), self.meta.close())
