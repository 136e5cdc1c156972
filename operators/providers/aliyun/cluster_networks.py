"""The aliyun provider's side of tenant networks (network.py does the calls): each cluster's
network made when its control plane is claimed, looked up once and cached for placing its
sandboxes, deleted when the cluster goes."""
from __future__ import annotations

import asyncio
import dataclasses

from ..errors import ProviderError
from .client import AliyunClient
from .eci_spec import EciPlacement
from .network import CloudNetwork, delete_network, ensure_network, find_network


class ClusterNetworks:
    def __init__(self, client: AliyunClient, home_id: str, zone_id: str | None):
        self.client, self.home_id, self.zone_id = client, home_id, zone_id
        self._cache: dict[str, CloudNetwork] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, cluster_uid: str, cidr: str) -> CloudNetwork:
        async with self._locks.setdefault(cluster_uid, asyncio.Lock()):
            network = await ensure_network(self.client, self.home_id, cluster_uid, cidr, zone_id=self.zone_id)
            self._cache[cluster_uid] = network
            return network

    def remember(self, cluster_uid: str, network: CloudNetwork) -> None:
        """A network known without asking (made by another process, as tests set it up)."""
        self._cache[cluster_uid] = network

    def forget(self, cluster_uid: str) -> None:
        """The cached network is not the cloud's any more (its VSwitch or group unknown)."""
        self._cache.pop(cluster_uid, None)

    async def get(self, cluster_uid: str) -> CloudNetwork:
        """The cluster's network, complete, as made by `ensure` (here or in another process)."""
        cached = self._cache.get(cluster_uid)
        if cached is not None:
            return cached
        async with self._locks.setdefault(cluster_uid, asyncio.Lock()):
            if cluster_uid in self._cache:
                return self._cache[cluster_uid]
            found = await find_network(self.client, self.home_id, cluster_uid)
            if found is None or not found.complete:
                raise ProviderError(f"the network of cluster {cluster_uid} is not made yet "
                                    f"({'no VPC' if found is None else 'a VPC without its VSwitches or group'})",
                                    reason="NetworkNotReady", retryable=True)
            self._cache[cluster_uid] = found
            return found

    async def placement(self, base: EciPlacement, cluster_uid: str) -> EciPlacement:
        """Where a sandbox goes: its cluster's pod VSwitch and security group, with the VPC
        resolver first for ClusterFirst DNS (as the local provider's sandboxes have it);
        the operator-wide placement for a sandbox of no cluster."""
        if not cluster_uid:
            return dataclasses.replace(base, cluster_uid="")
        network = await self.get(cluster_uid)
        servers = (network.resolver, *(s for s in base.name_servers if s != network.resolver))
        return dataclasses.replace(base, cluster_uid=cluster_uid, vswitch_id=network.pod_vswitch_id,
                                   security_group_id=network.security_group_id, name_servers=servers)

    async def release(self, cluster_uid: str) -> None:
        """Delete the cluster's network: a retryable ProviderError while groups or load
        balancers still drain from it."""
        await delete_network(self.client, self.home_id, cluster_uid)
        self._cache.pop(cluster_uid, None)
        self._locks.pop(cluster_uid, None)
