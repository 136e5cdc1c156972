"""What serves the emulator's private zones: the narrow protocol PvtzService drives, an
in-memory backend for tests, and one on this host's data plane (the local provider's
per-VPC resolvers, LocalPrivateZones, of the emulator's installation).

A backend is told a zone's whole state after each change: its name, the local keys of
the VPCs it is bound to (VpcDirectory.local_key: a tenant cluster's uid for a VPC the
emulator made for one), and its records in the local provider's shape (one record set per
rr and type: {"rr", "type", "values", "ttl"})."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Protocol

from ...providers.services import PrivateZones

log = logging.getLogger(__name__)
SERVED_TYPES = ("A", "AAAA", "CNAME", "PTR", "SRV", "TXT")  # what the local resolver answers


class ZoneBackend(Protocol):
    async def apply(self, zone_id: str, zone_name: str, vpc_keys: list[str], records: list[dict]) -> None:
        """Serve the zone as given (no VPCs: it answers nowhere)."""

    async def remove(self, zone_id: str) -> None:
        """Stop serving the zone; an unknown one is no error."""

    async def close(self) -> None:
        """Release what the backend holds."""


def local_records(records: Iterable[Any]) -> list[dict]:
    """Cloud records (one value each: .rr, .type, .value, .ttl) -> record sets; a set's TTL
    is its lowest. MX, which the local resolver does not serve, is left out."""
    sets: dict[tuple[str, str], dict] = {}
    for r in sorted(records, key=lambda r: r.id):
        if r.type not in SERVED_TYPES:
            continue
        entry = sets.setdefault((r.rr.lower(), r.type), {"rr": r.rr.lower(), "type": r.type, "values": [], "ttl": r.ttl})
        entry["values"].append(r.value)
        entry["ttl"] = min(entry["ttl"], r.ttl)
    return list(sets.values())


class MemoryZones:
    def __init__(self) -> None:
        self.served: dict[str, tuple[str, list[str], list[dict]]] = {}

    async def apply(self, zone_id: str, zone_name: str, vpc_keys: list[str], records: list[dict]) -> None:
        self.served[zone_id] = (zone_name, list(vpc_keys), records)

    async def remove(self, zone_id: str) -> None:
        self.served.pop(zone_id, None)

    async def close(self) -> None:
        pass


class LocalZones:
    """Zones answered by the VPC resolvers on this host. A zone bound to no VPC is held by
    no resolver (LocalPrivateZones.ensure with none stops the ones it no longer needs)."""

    def __init__(self, zones: PrivateZones):
        self.zones = zones

    @classmethod
    def on(cls, provider: Any) -> LocalZones:
        """The zones of the VPCs the provider's sandboxes run in (its LocalVpcs, the one
        the emulator's VPC module makes networks with), else this installation's."""
        vpcs = getattr(provider, "vpcs", None)
        if vpcs is None:
            from ...providers import make_private_zones
            return cls(make_private_zones("local"))
        from ...providers.local.privatezone import LocalPrivateZones
        return cls(LocalPrivateZones(vpcs))

    async def apply(self, zone_id: str, zone_name: str, vpc_keys: list[str], records: list[dict]) -> None:
        await self.zones.ensure(zone_id, zone_name, vpc_keys, records)

    async def remove(self, zone_id: str) -> None:
        await self.zones.delete(zone_id)

    async def close(self) -> None:
        # The resolvers' sockets close with the process; zones still bound stop answering then.
        for zone_id in list(getattr(self.zones, "zones", {})):
            try:
                await self.zones.delete(zone_id)
            except Exception as exc:  # closing: say what stays, go on
                log.warning("zone %s: %s", zone_id, exc)
