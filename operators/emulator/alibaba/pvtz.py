"""PrivateZone (PVTZ, API version 2018-01-01): the zones and records sk8s's provider
manages, with the cloud's semantics.

- AddZone answers a new ZoneId whatever zones exist: names repeat (every tenant has a
  `cluster.local`), and the API has no ClientToken in the SDK sk8s uses, so a caller finds
  its zone by its Remark (UpdateZoneRemark: at most 50 characters, letters, digits and
  `_ - , .`). DescribeZones filters by Keyword (LIKE, case-insensitive, or SearchMode EXACT)
  and pages by PageNumber/PageSize (default 20, at most 100) with TotalItems/TotalPages.
- BindZoneVpc sets the zone's whole VPC list (Vpcs.N.RegionId / Vpcs.N.VpcId; none
  unbinds all); an unknown VPC is InvalidVpcId.NotFound, asked of the VPC directory, one
  still Pending IncorrectVpcStatus (the emulator's choice: its network does not exist yet).
- DeleteZone refuses a zone still bound (Zone.VpcExists, "Zone have vpc bound.", as the
  cloud answers: terraform's provider retries on it); an unknown zone is Zone.NotExists.
- Records: one per (Rr, Type, Value); a second identical one, or a CNAME next to other
  data at its Rr, is Record.Invalid.Conflict. SRV values are "priority weight port target";
  Priority is MX's only. DescribeZoneRecords pages as DescribeZones does.

Accounts (accounts.py): a call sees its own account's zones and records only, and binds
its own account's VPCs; another account's id is an unknown one (Zone.NotExists,
Record.NotExists, InvalidVpcId.NotFound).

What is bound is served by a ZoneBackend (`pvtz_backends`): in memory for tests, or the
local provider's resolvers of the VPCs on this host."""
from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from . import params as p
from .eci import Call
from .errors import ApiError, missing
from .resources import owned
from .pvtz_backends import ZoneBackend, local_records

VERSION = "2018-01-01"
PRODUCT = "pvtz"
HOST_ID = "pvtz.aliyuncs.com"
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "PTR", "SRV", "TXT")
ZONE_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?$")
RR = re.compile(r"^(@|\*|[A-Za-z0-9_*]([-A-Za-z0-9_]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?)*)$")
REMARK = re.compile(r"^[\w\-,.，。]{0,50}$")
DEFAULT_TTL = 60
log = logging.getLogger(__name__)


class VpcDirectory(Protocol):
    """The emulator's VPCs (vpc.py): a VPC's key on the local data plane, None if the
    account has no such VPC."""

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None: ...


def zone_missing(zone_id: str | None) -> ApiError:
    return ApiError(400, "Zone.NotExists", "Zone is not exists")


def record_invalid(what: str, message: str) -> ApiError:
    return ApiError(400, f"Record.Invalid.{what}", message)


@dataclass
class Record:
    id: int
    rr: str
    type: str
    value: str
    ttl: int
    priority: int | None
    remark: str
    created: float
    updated: float


@dataclass
class Zone:
    id: str
    name: str
    region: str
    created: float
    updated: float
    account: str  # whose key made it (accounts.py)
    remark: str = ""
    vpcs: list[dict[str, str]] = field(default_factory=list)  # {"RegionId", "VpcId", "LocalKey"}
    records: dict[int, Record] = field(default_factory=dict)


def _time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


def page_of(items: list, params: dict[str, str], render: Callable[[Any], dict]) -> tuple[list[dict], dict]:
    """One page of items and the paging fields the PVTZ listings answer."""
    number = p.integer(params, "PageNumber", 1, low=1)
    size = p.integer(params, "PageSize", 20, low=1, high=100)
    total = len(items)
    chosen = items[(number - 1) * size:number * size]
    return [render(i) for i in chosen], {"PageNumber": number, "PageSize": size, "TotalItems": total,
                                         "TotalPages": (total + size - 1) // size}


def matches(name: str, keyword: str | None, mode: str | None) -> bool:
    if keyword is None:
        return True
    if (mode or "LIKE").upper() == "EXACT":
        return name.lower() == keyword.lower()
    return keyword.lower() in name.lower()


def check_value(rtype: str, value: str) -> None:
    """The value's shape per type, as the cloud checks it."""
    try:
        if rtype == "A":
            ipaddress.IPv4Address(value)
        elif rtype == "AAAA":
            ipaddress.IPv6Address(value)
        elif rtype == "SRV":
            priority, weight, port, target = value.split()
            if not all(x.isdigit() for x in (priority, weight, port)) or not 0 < int(port) < 65536 or not target:
                raise ValueError
        elif rtype in ("CNAME", "MX", "PTR") and not re.match(r"^[A-Za-z0-9_.-]{1,253}$", value):
            raise ValueError
        elif rtype == "TXT" and len(value) > 512:
            raise ValueError
    except ValueError:
        raise record_invalid("Value", f"The value {value[:100]!r} is not valid for a {rtype} record.") from None


class PvtzService:
    version = VERSION
    product = PRODUCT
    host_id = HOST_ID

    def __init__(self, directory: VpcDirectory, backend: ZoneBackend, clock: Callable[[], float] = time.time):
        self.directory = directory
        self.backend = backend
        self.clock = clock
        self.zones: dict[str, Zone] = {}
        self._record_seq = 100000

    def actions(self) -> dict[str, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {"AddZone": self.add_zone, "DescribeZones": self.describe_zones,
                "DescribeZoneInfo": self.zone_info, "UpdateZoneRemark": self.update_remark,
                "DeleteZone": self.delete_zone, "BindZoneVpc": self.bind_vpcs,
                "AddZoneRecord": self.add_record, "UpdateZoneRecord": self.update_record,
                "DeleteZoneRecord": self.delete_record, "DescribeZoneRecords": self.describe_records}

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {"PrivateZone": [
            {"ZoneId": z.id, "ZoneName": z.name, "Remark": z.remark, "RegionId": z.region,
             "Vpcs": [{"RegionId": v["RegionId"], "VpcId": v["VpcId"]} for v in z.vpcs],
             "Records": [self._render_record(r) for r in sorted(z.records.values(), key=lambda r: r.id)],
             "Account": z.account}
            for z in sorted(self.zones.values(), key=lambda z: z.created)]}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.backend.close()

    # -- zones ---------------------------------------------------------------------------

    def _zone(self, call: Call) -> Zone:
        zone_id = p.text(call.params, "ZoneId")
        if zone_id is None:
            raise missing("ZoneId")
        zone = owned(self.zones, zone_id, call.account)
        if zone is None:
            raise zone_missing(zone_id)
        return zone

    async def add_zone(self, call: Call) -> dict[str, Any]:
        name = p.text(call.params, "ZoneName")
        if name is None:
            raise missing("ZoneName")
        name = name.rstrip(".").lower()
        if not ZONE_NAME.match(name):
            raise ApiError(400, "Zone.Invalid.Name", "Zone name is invalid.")
        now = self.clock()
        zone = Zone(id=secrets.token_hex(16), name=name, region=call.region, created=now, updated=now,
                    account=call.account)
        self.zones[zone.id] = zone
        return {"ZoneId": zone.id, "ZoneName": name, "Success": True}

    def _render_zone(self, z: Zone) -> dict[str, Any]:
        return {"ZoneId": z.id, "ZoneName": z.name, "Remark": z.remark, "RecordCount": len(z.records),
                "CreateTime": _time(z.created), "CreateTimestamp": int(z.created * 1000),
                "UpdateTime": _time(z.updated), "UpdateTimestamp": int(z.updated * 1000),
                "IsPtr": z.name.endswith(".arpa"), "ProxyPattern": "ZONE", "ZoneType": "AUTH_ZONE",
                "ResourceGroupId": "", "ResourceTags": {"ResourceTag": []}}

    async def describe_zones(self, call: Call) -> dict[str, Any]:
        f = call.params
        keyword, mode = p.text(f, "Keyword"), p.text(f, "SearchMode")
        vpc = p.text(f, "QueryVpcId")
        found = [z for z in sorted(self.zones.values(), key=lambda z: z.created)
                 if z.account == call.account and matches(z.name, keyword, mode)
                 and (vpc is None or any(v["VpcId"] == vpc for v in z.vpcs))]
        zones, paging = page_of(found, f, self._render_zone)
        return {**paging, "Zones": {"Zone": zones}}

    async def zone_info(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        return {**self._render_zone(zone), "SlaveDns": False, "DnsGroup": "NORMAL_ZONE",
                "BindVpcs": {"Vpc": [{"RegionId": v["RegionId"], "VpcId": v["VpcId"], "VpcName": "",
                                      "RegionName": v["RegionId"], "VpcType": "STANDARD"} for v in zone.vpcs]}}

    async def update_remark(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        remark = p.text(call.params, "Remark") or ""
        if not REMARK.match(remark):
            raise ApiError(400, "Zone.Remark", "50 characters long. It can only contain numbers,Chinese,"
                           "English and special characters: _ - , . ，。")
        zone.remark, zone.updated = remark, self.clock()
        return {"ZoneId": zone.id}

    async def delete_zone(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        if zone.vpcs:
            raise ApiError(400, "Zone.VpcExists", "Zone have vpc bound.")
        del self.zones[zone.id]
        await self._serve(zone, removed=True)
        return {"ZoneId": zone.id}

    async def bind_vpcs(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        wanted = p.unflatten({k: v for k, v in call.params.items() if k.startswith("Vpcs.")}).get("Vpcs", [])
        bound, seen = [], set()
        for i, vpc in enumerate(wanted, 1):
            vpc_id = p.text(vpc, "VpcId") if isinstance(vpc, dict) else None
            if vpc_id is None:
                raise missing(f"Vpcs.{i}.VpcId")
            key = self.directory.local_key(vpc_id, call.account)
            if key is None:
                raise ApiError(400, "InvalidVpcId.NotFound", f"The specified VpcId {vpc_id} is not found.")
            # Not before its network exists: the resolver would make one of its own range.
            details = getattr(self.directory, "vpc", lambda _id, _account: None)(vpc_id, call.account)
            if details is not None and details.get("Status", "Available") != "Available":
                raise ApiError(400, "IncorrectVpcStatus", "The current status of the VPC does not support this "
                               "operation.")
            if vpc_id not in seen:
                seen.add(vpc_id)
                bound.append({"RegionId": p.text(vpc, "RegionId") or call.region, "VpcId": vpc_id, "LocalKey": key})
        zone.vpcs, zone.updated = bound, self.clock()
        await self._serve(zone)
        return {"ZoneId": zone.id}

    async def _serve(self, zone: Zone, removed: bool = False) -> None:
        """Tell the backend; the API's state stands either way (a retried call applies again)."""
        try:
            if removed:
                await self.backend.remove(zone.id)
            else:
                await self.backend.apply(zone.id, zone.name, [v["LocalKey"] for v in zone.vpcs],
                                         local_records(zone.records.values()))
        except Exception as exc:  # the answer says so; the next change of the zone applies again
            log.warning("zone %s (%s): the backend failed: %s", zone.id, zone.name, exc)
            raise ApiError(500, "InternalError", f"The zone could not be served: {exc}") from exc

    # -- records -------------------------------------------------------------------------

    def _record_fields(self, params: dict[str, str], old: Record | None = None) -> tuple[str, str, str, int, int | None]:
        rr, rtype, value = (p.text(params, k) for k in ("Rr", "Type", "Value"))
        for name, v in (("Rr", rr), ("Type", rtype), ("Value", value)):
            if v is None:
                raise missing(name)
        if not RR.match(rr) or len(rr) > 253:
            raise record_invalid("Rr", f"The host record {rr[:100]!r} is not valid.")
        rtype = rtype.upper()
        if rtype not in RECORD_TYPES:
            raise record_invalid("Type", f"The record type must be one of {', '.join(RECORD_TYPES)}.")
        check_value(rtype, value)
        try:
            ttl = p.integer(params, "Ttl", old.ttl if old else DEFAULT_TTL, low=0, high=86400)
        except ApiError:
            raise record_invalid("Ttl", "The TTL must be seconds in [0, 86400].") from None
        priority = p.integer(params, "Priority", 10 if rtype == "MX" else None, low=1, high=99)
        return rr, rtype, value, ttl, priority if rtype == "MX" else None

    @staticmethod
    def _conflict(zone: Zone, rr: str, rtype: str, value: str, skip: int | None = None) -> None:
        for r in zone.records.values():
            if r.id == skip or r.rr.lower() != rr.lower():
                continue
            if r.type == rtype and r.value == value:
                raise record_invalid("Conflict", "The same record already exists.")
            if "CNAME" in (r.type, rtype):  # a CNAME stands alone at its name
                raise record_invalid("Conflict", "A CNAME record conflicts with another record of the host.")

    async def add_record(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        rr, rtype, value, ttl, priority = self._record_fields(call.params)
        self._conflict(zone, rr, rtype, value)
        self._record_seq += 1
        now = self.clock()
        record = Record(self._record_seq, rr, rtype, value, ttl, priority, p.text(call.params, "Remark") or "",
                        now, now)
        zone.records[record.id] = record
        zone.updated = now
        await self._serve(zone)
        return {"RecordId": record.id, "Success": True}

    def _find_record(self, call: Call) -> tuple[Zone, Record]:
        record_id = p.integer(call.params, "RecordId")
        if record_id is None:
            raise missing("RecordId")
        for zone in self.zones.values():
            if zone.account == call.account and record_id in zone.records:
                return zone, zone.records[record_id]
        raise ApiError(400, "Record.NotExists", f"The record {record_id} does not exist.")

    async def update_record(self, call: Call) -> dict[str, Any]:
        zone, record = self._find_record(call)
        rr, rtype, value, ttl, priority = self._record_fields(call.params, record)
        self._conflict(zone, rr, rtype, value, skip=record.id)
        record.rr, record.type, record.value, record.ttl, record.priority = rr, rtype, value, ttl, priority
        record.updated = zone.updated = self.clock()
        await self._serve(zone)
        return {"RecordId": record.id}

    async def delete_record(self, call: Call) -> dict[str, Any]:
        zone, record = self._find_record(call)
        del zone.records[record.id]
        zone.updated = self.clock()
        await self._serve(zone)
        return {"RecordId": record.id}

    @staticmethod
    def _render_record(r: Record) -> dict[str, Any]:
        out = {"RecordId": r.id, "Rr": r.rr, "Type": r.type, "Value": r.value, "Ttl": r.ttl, "Status": "ENABLE",
               "Remark": r.remark, "CreateTimestamp": int(r.created * 1000), "UpdateTimestamp": int(r.updated * 1000)}
        if r.priority is not None:
            out["Priority"] = r.priority
        return out

    async def describe_records(self, call: Call) -> dict[str, Any]:
        zone = self._zone(call)
        keyword, mode = p.text(call.params, "Keyword"), p.text(call.params, "SearchMode")
        found = [r for r in sorted(zone.records.values(), key=lambda r: r.id) if matches(r.rr, keyword, mode)]
        records, paging = page_of(found, call.params, self._render_record)
        return {**paging, "Records": {"Record": records}}


class AnyVpc:
    """The directory while the emulator has no VPC API of its own: every VpcId is taken as
    an existing VPC whose local key is the id itself."""

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None:
        return vpc_id


def for_groups(groups: object, directory: VpcDirectory | None = None) -> PvtzService:
    """PrivateZone on the data plane the container groups run on: the local VPC resolvers
    when the groups are real sandboxes (PodmanBackend), else in memory."""
    from .podman_backend import PodmanBackend
    from .pvtz_backends import LocalZones, MemoryZones
    backend = LocalZones.on(groups.provider) if isinstance(groups, PodmanBackend) else MemoryZones()
    return PvtzService(directory or AnyVpc(), backend)
