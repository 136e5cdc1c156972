"""One provider object per cloud account, chosen per call (accounts.py).

Each account's sandboxes, load balancers and zones are served by objects of their own
(AliyunProvider, AliyunLoadBalancers, AliyunPrivateZones, AliyunStreams), made on first
use and keyed by access key id: an account's objects pace, sweep and watch only what that
account can see, and its token bucket is its own (the cloud throttles per account). The
wrappers here route each call by the cluster or sandbox namespace it names, and merge what
spans accounts (lists, watches, start-up sweeps).

A call naming neither a cluster nor a namespace with an account of its own (an admin's
SandboxPod, an internet LB of no cluster) goes to the installation's account.
A key rotated in a cluster's Secret makes new objects on the next call; the old key's
are dropped once no account names it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable, Generic, TypeVar

from ...models.podspec import PodSpec
from ..errors import ProviderError
from ..lifecycle import SandboxLifecycle, VolumeContent
from ..sandbox import SandboxInstance, SandboxRef
from ..services import LBSpec, LBState, LoadBalancers, PrivateZones
from ..streaming import SandboxStreams
from .accounts import AccountStore
from .client import Credentials

log = logging.getLogger(__name__)
T = TypeVar("T")


class Router(Generic[T]):
    """`build(credentials)` makes an account's object; `default` is the installation's key."""

    def __init__(self, default: Credentials, store: AccountStore, build: Callable[[Credentials], T]):
        self.default, self.store, self.build = default, store, build
        self._made: dict[str, tuple[Credentials, T]] = {}  # access key id -> (its key pair, object)

    def _get(self, creds: Credentials) -> T:
        made = self._made.get(creds.access_key_id)
        if made is None or made[0] != creds:
            made = self._made[creds.access_key_id] = (creds, self.build(creds))
        return made[1]

    def for_cluster(self, cluster_uid: str | None) -> T:
        account = self.store.get(cluster_uid) if cluster_uid else None
        return self._get(account.credentials if account else self.default)

    def for_namespace(self, namespace: str) -> T:
        account = self.store.for_namespace(namespace)
        return self._get(account.credentials if account else self.default)

    def every(self) -> list[T]:
        """One object per account in use: the installation's and every cluster's."""
        keys = {self.default.access_key_id: self.default}
        for account in self.store.accounts():
            keys.setdefault(account.credentials.access_key_id, account.credentials)
        return [self._get(c) for c in keys.values()]

    def stale(self) -> list[T]:
        """Objects of keys no account names any more (rotated away); forgotten here."""
        wanted = {self.default.access_key_id} | {a.credentials.access_key_id for a in self.store.accounts()}
        gone = [k for k in self._made if k not in wanted]
        return [self._made.pop(k)[1] for k in gone]


class RoutedLifecycle(SandboxLifecycle):
    name = "aliyun"

    def __init__(self, router: Router[SandboxLifecycle]):
        self.router = router

    def _by_ref(self, ref: SandboxRef) -> SandboxLifecycle:
        """By the SandboxPod's namespace, the one key every call has (tenancy keeps a
        cluster's SandboxPods in its sandbox namespace, and only there)."""
        return self.router.for_namespace(ref.namespace)

    async def setup(self) -> None:
        for p in self.router.every():
            await p.setup()

    async def ensure_cluster_network(self, cluster_uid: str, cidr: str) -> str | None:
        return await self.router.for_cluster(cluster_uid).ensure_cluster_network(cluster_uid, cidr)

    async def release_cluster(self, cluster_uid: str) -> None:
        await self.router.for_cluster(cluster_uid).release_cluster(cluster_uid)

    async def cluster_networks(self) -> list[str]:
        held: set[str] = set()
        for p in self.router.every():
            held |= set(await p.cluster_networks())
        return sorted(held)

    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: VolumeContent) -> None:
        await self._by_ref(ref).prepare_volumes(ref, spec, labels, content)

    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        return await self._by_ref(ref).ensure(ref, spec, labels)

    async def change_images(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> list[str]:
        return await self._by_ref(ref).change_images(ref, spec, labels)

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        return await self._by_ref(ref).write_volumes(ref, spec, content)

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        return await self._by_ref(ref).inspect(ref)

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        await self._by_ref(ref).delete(ref, grace_seconds)

    async def list(self) -> list[SandboxRef]:
        refs: set[SandboxRef] = set()
        for p in self.router.every():
            refs |= set(await p.list())
        return sorted(refs, key=lambda r: (r.namespace, r.name))

    async def watch(self, rescan: float = 5.0) -> AsyncIterator[SandboxRef]:
        """Every account's watch, merged; an account that appears (a new cluster's) is
        watched from the next rescan, one whose key is gone is no longer."""
        queue: asyncio.Queue[SandboxRef] = asyncio.Queue()
        tasks: dict[int, asyncio.Task] = {}

        async def pump(p: SandboxLifecycle) -> None:
            async for ref in p.watch():
                queue.put_nowait(ref)

        try:
            while True:
                for p in self.router.stale():
                    task = tasks.pop(id(p), None)
                    if task:
                        task.cancel()
                for p in self.router.every():
                    if id(p) not in tasks:
                        tasks[id(p)] = asyncio.create_task(pump(p))
                try:  # (asyncio.timeout: 3.11's wait_for may swallow a cancellation, see aio.py)
                    async with asyncio.timeout(rescan):
                        ref = await queue.get()
                except TimeoutError:
                    continue
                yield ref
                while not queue.empty():
                    yield queue.get_nowait()
        finally:
            for task in tasks.values():
                task.cancel()


class RoutedLoadBalancers(LoadBalancers):
    """An LB's account is its cluster's: `vpc_id` names the cluster (ServiceLB.spec.vpcID)."""
    name = "aliyun"

    def __init__(self, router: Router[LoadBalancers]):
        self.router = router
        self._of: dict[str, LoadBalancers] = {}  # LB id -> its account's object, once ensured

    def _route(self, lb: LoadBalancers) -> LoadBalancers:
        lb.on_health_change = self.on_health_change
        return lb

    async def setup(self, known: dict[str, str]) -> None:
        for lb in self.router.every():
            await self._route(lb).setup(known)

    async def ensure(self, spec: LBSpec, address: str | None) -> LBState:
        lb = self._of[spec.id] = self._route(self.router.for_cluster(spec.vpc_id))
        return await lb.ensure(spec, address)

    def state(self, lb_id: str) -> LBState | None:
        lb = self._of.get(lb_id)
        return lb.state(lb_id) if lb else None

    async def delete(self, lb_id: str, address: str | None = None, vpc_id: str | None = None) -> None:
        lb = self._of.pop(lb_id, None) or self._route(self.router.for_cluster(vpc_id))
        await lb.delete(lb_id, address, vpc_id)

    async def close(self) -> None:
        for lb in self.router.every():
            close = getattr(lb, "close", None)
            if close:
                await close()


class RoutedPrivateZones(PrivateZones):
    """A zone's account is that of the clusters whose VPCs it is bound to (one account)."""
    name = "aliyun"

    def __init__(self, router: Router[PrivateZones]):
        self.router = router

    async def setup(self) -> None:
        for z in self.router.every():
            await z.setup()

    async def ensure(self, zone_id: str, zone_name: str, vpc_ids: list[str], records: list[dict]) -> list[str]:
        owners = {id(self.router.for_cluster(v)) for v in vpc_ids}
        if len(owners) > 1:
            raise ProviderError(f"zone {zone_name}: its VPCs belong to clusters of different cloud accounts",
                                reason="InvalidVpcBinding", retryable=False)
        zones = self.router.for_cluster(vpc_ids[0] if vpc_ids else None)
        return await zones.ensure(zone_id, zone_name, vpc_ids, records)

    async def delete(self, zone_id: str) -> None:
        """A zone is found by its remark in whichever account holds it: every account is asked."""
        for z in self.router.every():
            await z.delete(zone_id)

    async def vpc_resolver(self, vpc_id: str) -> str:
        return await self.router.for_cluster(vpc_id).vpc_resolver(vpc_id)


class RoutedStreams(SandboxStreams):
    name = "aliyun"

    def __init__(self, router: Router[SandboxStreams]):
        self.router = router

    def logs(self, ref, container, opts):
        return self.router.for_namespace(ref.namespace).logs(ref, container, opts)

    async def open_exec_session(self, ref, container, command, **kw):
        return await self.router.for_namespace(ref.namespace).open_exec_session(ref, container, command, **kw)

    async def open_attach_session(self, ref, container, **kw):
        return await self.router.for_namespace(ref.namespace).open_attach_session(ref, container, **kw)

    async def open_port_stream(self, ref, port):
        return await self.router.for_namespace(ref.namespace).open_port_stream(ref, port)
