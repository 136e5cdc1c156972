"""Local private zones: one resolver per VPC, answering for every zone bound to it.

The resolver listens on the VPC's resolver address (UDP and TCP 53) inside the VPC's
anchor namespace; sandboxes of the VPC get it as their nameserver.
"""
from __future__ import annotations

import asyncio
import logging
import socket

from ..errors import ProviderError
from ..services import PrivateZones
from . import netns
from .dnsserver import DnsServer, ZoneTable
from .vpc import LocalVpcs

log = logging.getLogger(__name__)
DNS_PORT = 53


class LocalPrivateZones(PrivateZones):
    name = "local"

    def __init__(self, vpcs: LocalVpcs) -> None:
        self.vpcs = vpcs
        self.zones: dict[str, tuple[str, list[str], list[dict]]] = {}
        self.tables: dict[str, ZoneTable] = {}
        self.servers: dict[str, DnsServer] = {}
        self._lock = asyncio.Lock()

    async def vpc_resolver(self, vpc_id: str) -> str:
        return (await self.vpcs.ensure(vpc_id)).layout.resolver

    def _reload(self, vpc_id: str) -> None:
        bound = [(name, records) for name, vpcs, records in self.zones.values() if vpc_id in vpcs]
        self.tables.setdefault(vpc_id, ZoneTable()).load(bound)

    async def _serve(self, vpc_id: str) -> str:
        vpc = await self.vpcs.ensure(vpc_id)
        server = self.servers.get(vpc_id)
        if server is None or server.netns != vpc.netns:
            if server is not None:  # the anchor was re-created: its old namespace is gone
                await server.close()
            try:
                udp = netns.bind_in(vpc.netns, vpc.layout.resolver, DNS_PORT, socket.SOCK_DGRAM)
                tcp = netns.bind_in(vpc.netns, vpc.layout.resolver, DNS_PORT, socket.SOCK_STREAM)
            except OSError as exc:
                raise ProviderError(f"VPC {vpc_id} resolver {vpc.layout.resolver}:53: {exc.strerror}",
                                    reason="ListenFailed") from exc
            server = DnsServer(self.tables[vpc_id], udp, tcp)
            server.netns = vpc.netns
            await server.start()
            self.servers[vpc_id] = server
        return vpc.layout.resolver

    async def ensure(self, zone_id: str, zone_name: str, vpc_ids: list[str], records: list[dict]) -> list[str]:
        async with self._lock:
            old = self.zones.get(zone_id)
            self.zones[zone_id] = (zone_name, list(vpc_ids), list(records))
            affected = set(vpc_ids) | set(old[1] if old else [])
            for vpc_id in affected:
                self._reload(vpc_id)
            resolvers = [await self._serve(v) for v in vpc_ids]
            for vpc_id in affected - set(vpc_ids):
                await self._stop_if_unused(vpc_id)
            return resolvers

    async def _stop_if_unused(self, vpc_id: str) -> None:
        if any(vpc_id in vpcs for _, vpcs, _ in self.zones.values()):
            return
        server = self.servers.pop(vpc_id, None)
        self.tables.pop(vpc_id, None)
        if server:
            await server.close()

    async def delete(self, zone_id: str) -> None:
        async with self._lock:
            old = self.zones.pop(zone_id, None)
            for vpc_id in old[1] if old else []:
                self._reload(vpc_id)
                await self._stop_if_unused(vpc_id)

    def queries(self) -> int:
        return sum(t.queries for t in self.tables.values())
