"""Virtual Private Cloud (VPC, API version 2016-04-28, the one aliyunsdkvpc's request
classes send): VPCs and VSwitches, with the cloud's semantics; and the directory the
other product modules place their resources by (`local_key`, `vswitch`).

- CreateVpc (CidrBlock in 10/8, 172.16/12 or 192.168/16, a /8 to /28; VpcName,
  Description, ClientToken, Tag.N) answers at once; the VPC is Pending until its backend
  made it (a real local network on the podman backend) and `settle` seconds passed, then
  Available. CreateVSwitch (VpcId, ZoneId, CidrBlock a /16 to /29 inside the VPC's,
  overlapping no other VSwitch) needs an Available VPC (IncorrectVpcStatus) and is
  Pending for `settle` seconds too.
- DescribeVpcs (VpcId: up to 20, comma-separated; VpcName; Tag.N) and DescribeVSwitches
  (VpcId, VSwitchId, ZoneId, VSwitchName, Tag.N) page by PageNumber/PageSize.
- DeleteVpc: DependencyViolation.VSwitch while it has VSwitches, DependencyViolation.<Kind>
  while another product's resource is in it (a security group); the VPC is unlisted at
  once, its backend network removed behind. DeleteVSwitch: DependencyViolation while a
  container group or a load balancer is in it. Unknown ids: Invalid{Vpc,VSwitch}Id.NotFound.

The directory: `local_key(vpc_id)` is the name of the VPC's local network, the value of
its sk8s.io/cluster-uid tag when it has one (the tenant's VPC key everywhere in sk8s), else
its VpcId; `vswitch(id)` is a VSwitch as DescribeVSwitches shows it (VpcId, CidrBlock,
Status). Each takes the account asking (accounts.py): another account's VPC or VSwitch is
None, as an unknown one is. Other modules register `users`: functions from a VPC or VSwitch id to the kind
of a resource of theirs that is in it, or None."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from ...models.contracts import LABEL_CLUSTER_UID
from ...providers.aliyun.eci_status import untag_value
from . import params as p
from .eci import Call
from .errors import ApiError, missing
from .resources import ClientTokens, create_tags, first_user, new_id, not_found, owned, page, render_time
from .resources import tag_filters, tagged

VERSION = "2016-04-28"
PRODUCT = "Vpc"
HOST_ID = "vpc.aliyuncs.com"
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
VPC_MASKS, VSWITCH_MASKS = (8, 28), (16, 29)
MAX_IDS = 20
RETRY = 2.0  # seconds between tries of a backend that failed to make a VPC's network
log = logging.getLogger(__name__)


class VpcBackend(Protocol):
    async def ensure(self, key: str, cidr: str) -> None:
        """Make the VPC's network (idempotent)."""

    async def release(self, key: str) -> None:
        """Remove it (idempotent)."""


class MemoryVpcs:
    """Networks that exist only as entries (unit tests)."""

    def __init__(self) -> None:
        self.networks: dict[str, str] = {}
        self.released: list[str] = []

    async def ensure(self, key: str, cidr: str) -> None:
        self.networks[key] = cidr

    async def release(self, key: str) -> None:
        self.networks.pop(key, None)
        self.released.append(key)


@dataclass
class VpcRecord:
    id: str
    seq: int
    region: str
    cidr: str
    name: str
    description: str
    tags: list[dict[str, str]]
    created: float
    account: str  # whose key made it (accounts.py)
    made: bool = False  # the backend's network exists
    task: asyncio.Task | None = field(default=None, repr=False)


@dataclass
class VSwitchRecord:
    id: str
    seq: int
    region: str
    vpc_id: str
    zone: str
    cidr: str
    name: str
    description: str
    tags: list[dict[str, str]]
    created: float
    account: str  # whose key made it (accounts.py)


def incorrect_status(kind: str) -> ApiError:
    """The cloud's words ("vpc subnet" is a VSwitch)."""
    what = {"Vpc": "Current VPC status", "VSwitch": "vpc subnet status"}[kind]
    return ApiError(400, f"Incorrect{kind}Status", f"{what} does not support this operation.")


def cidr_block(params: dict[str, str], masks: tuple[int, int]) -> ipaddress.IPv4Network:
    raw = p.text(params, "CidrBlock")
    if raw is None:
        raise missing("CidrBlock")
    try:
        net = ipaddress.IPv4Network(raw, strict=True)
    except ValueError:
        net = None
    if net is None or not masks[0] <= net.prefixlen <= masks[1] or not any(net.subnet_of(r) for r in PRIVATE):
        raise ApiError(400, "InvalidCidrBlock.Malformed",
                       f"The specified CidrBlock is not valid: a /{masks[0]} to /{masks[1]} of 10.0.0.0/8, "
                       "172.16.0.0/12 or 192.168.0.0/16.")
    return net


class VpcService:
    version = VERSION
    product = PRODUCT
    host_id = HOST_ID

    def __init__(self, backend: VpcBackend | None = None, *, settle: float = 0.5,
                 clock: Callable[[], float] = time.time):
        self.backend = backend or MemoryVpcs()
        self.settle = settle
        self.clock = clock
        self.vpcs: dict[str, VpcRecord] = {}
        self.vswitches: dict[str, VSwitchRecord] = {}
        self.tokens = ClientTokens()
        self.users: list[Callable[[str], str | None]] = []  # resource id -> kind of a dependent
        self._seq = 0
        self._releases: set[asyncio.Task] = set()

    def actions(self) -> dict[str, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {"CreateVpc": self.create_vpc, "DescribeVpcs": self.describe_vpcs, "DeleteVpc": self.delete_vpc,
                "CreateVSwitch": self.create_vswitch, "DescribeVSwitches": self.describe_vswitches,
                "DeleteVSwitch": self.delete_vswitch}

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {"Vpc": [{**self._render_vpc(r), "Account": r.account}
                        for r in sorted(self.vpcs.values(), key=lambda r: r.seq)],
                "VSwitch": [{**self._render_vswitch(r), "Account": r.account}
                            for r in sorted(self.vswitches.values(), key=lambda r: r.seq)]}

    # -- the directory -------------------------------------------------------------------

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None:
        record = owned(self.vpcs, vpc_id, account)
        if record is None:
            return None
        cluster = next((untag_value(t["Value"]) for t in record.tags if t["Key"] == LABEL_CLUSTER_UID), "")
        return cluster or record.id

    def vpc(self, vpc_id: str, account: str | None = None) -> dict | None:
        record = owned(self.vpcs, vpc_id, account)
        return self._render_vpc(record) if record else None

    def vswitch(self, vsw_id: str, account: str | None = None) -> dict | None:
        record = owned(self.vswitches, vsw_id, account)
        return self._render_vswitch(record) if record else None

    # -- VPCs ----------------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _vpc_status(self, r: VpcRecord) -> str:
        return "Available" if r.made and self.clock() - r.created >= self.settle else "Pending"

    async def create_vpc(self, call: Call) -> dict[str, Any]:
        earlier = self.tokens.seen("CreateVpc", call.account, call.region, call.params)
        if earlier is not None:
            return {"VpcId": earlier, "VRouterId": "vrt-" + earlier[4:], "RouteTableId": "vtb-" + earlier[4:],
                    "ResourceGroupId": ""}
        net = cidr_block(call.params, VPC_MASKS)
        record = VpcRecord(id=new_id("vpc"), seq=self._next(), region=call.region, cidr=str(net),
                           name=p.text(call.params, "VpcName") or "", tags=create_tags(call.params),
                           description=p.text(call.params, "Description") or "", created=self.clock(),
                           account=call.account)
        self.vpcs[record.id] = record
        self.tokens.remember("CreateVpc", call.account, call.region, call.params, record.id)
        record.task = asyncio.create_task(self._make(record))
        return {"VpcId": record.id, "VRouterId": "vrt-" + record.id[4:], "RouteTableId": "vtb-" + record.id[4:],
                "ResourceGroupId": ""}

    async def _make(self, record: VpcRecord) -> None:
        """The VPC's network, tried until made (the VPC stays Pending meanwhile)."""
        key = self.local_key(record.id) or record.id
        while True:
            try:
                await self.backend.ensure(key, record.cidr)
            except Exception as e:  # the cloud would keep the VPC Pending; the log says why
                log.warning("VPC %s: making its network %s failed: %s", record.id, key, e)
                await asyncio.sleep(RETRY)
                continue
            record.made = True
            return

    async def describe_vpcs(self, call: Call) -> dict[str, Any]:
        f = call.params
        ids = [i for i in (p.text(f, "VpcId") or "").split(",") if i]
        if len(ids) > MAX_IDS:
            raise ApiError(400, "InvalidVpcId.Malformed", f"At most {MAX_IDS} VpcIds, comma-separated.")
        name, filters = p.text(f, "VpcName"), tag_filters(f)
        matches = [r for r in sorted(self.vpcs.values(), key=lambda r: r.seq)
                   if r.region == call.region and r.account == call.account and (not ids or r.id in ids)
                   and name in (None, r.name)
                   and tagged(r.tags, filters)]
        shown, paging = page(matches, f)
        return {**paging, "Vpcs": {"Vpc": [self._render_vpc(r) for r in shown]}}

    def _render_vpc(self, r: VpcRecord) -> dict[str, Any]:
        switches = [s.id for s in sorted(self.vswitches.values(), key=lambda s: s.seq) if s.vpc_id == r.id]
        return {"VpcId": r.id, "RegionId": r.region, "Status": self._vpc_status(r), "VpcName": r.name,
                "Description": r.description, "CidrBlock": r.cidr, "CreationTime": render_time(r.created),
                "VRouterId": "vrt-" + r.id[4:], "IsDefault": False, "ResourceGroupId": "",
                "VSwitchIds": {"VSwitchId": switches}, "UserCidrs": {"UserCidr": []},
                "SecondaryCidrBlocks": {"SecondaryCidrBlock": []}, "Tags": {"Tag": [dict(t) for t in r.tags]}}

    async def delete_vpc(self, call: Call) -> dict[str, Any]:
        vpc_id = p.text(call.params, "VpcId")
        if vpc_id is None:
            raise missing("VpcId")
        record = owned(self.vpcs, vpc_id, call.account)
        if record is None:
            raise not_found("Vpc", vpc_id, "VPC")
        if self._vpc_status(record) != "Available":
            raise incorrect_status("Vpc")
        if any(s.vpc_id == vpc_id for s in self.vswitches.values()):
            raise ApiError(400, "DependencyViolation.VSwitch", "Specified object has dependent resources.")
        kind = first_user(self.users, vpc_id)
        if kind:
            raise ApiError(400, f"DependencyViolation.{kind}", f"Specified object has dependent resources {kind}.")
        key = self.local_key(vpc_id) or vpc_id
        del self.vpcs[vpc_id]
        task = asyncio.create_task(self._release(key))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        return {}

    async def _release(self, key: str) -> None:
        try:
            await self.backend.release(key)
        except Exception:  # the VPC is gone from the API either way; the log says what is left
            log.exception("removing the network %s of a deleted VPC failed", key)

    # -- VSwitches ---------------------------------------------------------------------------

    def _vswitch_status(self, r: VSwitchRecord) -> str:
        return "Available" if self.clock() - r.created >= self.settle else "Pending"

    async def create_vswitch(self, call: Call) -> dict[str, Any]:
        earlier = self.tokens.seen("CreateVSwitch", call.account, call.region, call.params)
        if earlier is not None:
            return {"VSwitchId": earlier}
        f = call.params
        vpc_id, zone = p.text(f, "VpcId"), p.text(f, "ZoneId")
        if vpc_id is None:
            raise missing("VpcId")
        if zone is None:
            raise missing("ZoneId")
        vpc = owned(self.vpcs, vpc_id, call.account)
        if vpc is None or vpc.region != call.region:
            raise not_found("Vpc", vpc_id, "VPC")
        net = cidr_block(f, VSWITCH_MASKS)
        if not net.subnet_of(ipaddress.IPv4Network(vpc.cidr)):
            raise ApiError(400, "InvalidCidrBlock.Malformed",
                           f"The specified CidrBlock {net} is not within the VPC's {vpc.cidr}.")
        if any(s.vpc_id == vpc_id and net.overlaps(ipaddress.IPv4Network(s.cidr)) for s in self.vswitches.values()):
            raise ApiError(400, "InvalidCidrBlock.Overlapped",
                           f"The specified CidrBlock {net} overlaps another VSwitch of the VPC.")
        if self._vpc_status(vpc) != "Available":
            raise incorrect_status("Vpc")
        record = VSwitchRecord(id=new_id("vsw"), seq=self._next(), region=call.region, vpc_id=vpc_id, zone=zone,
                               cidr=str(net), name=p.text(f, "VSwitchName") or "", tags=create_tags(f),
                               description=p.text(f, "Description") or "", created=self.clock(),
                               account=call.account)
        self.vswitches[record.id] = record
        self.tokens.remember("CreateVSwitch", call.account, call.region, f, record.id)
        return {"VSwitchId": record.id}

    async def describe_vswitches(self, call: Call) -> dict[str, Any]:
        f = call.params
        wanted = {k: p.text(f, k) for k in ("VpcId", "VSwitchId", "ZoneId", "VSwitchName")}
        fields = {"VpcId": "vpc_id", "VSwitchId": "id", "ZoneId": "zone", "VSwitchName": "name"}
        filters = tag_filters(f)
        matches = [r for r in sorted(self.vswitches.values(), key=lambda r: r.seq)
                   if r.region == call.region and r.account == call.account and tagged(r.tags, filters)
                   and all(v is None or getattr(r, fields[k]) == v for k, v in wanted.items())]
        shown, paging = page(matches, f)
        return {**paging, "VSwitches": {"VSwitch": [self._render_vswitch(r) for r in shown]}}

    def _render_vswitch(self, r: VSwitchRecord) -> dict[str, Any]:
        size = ipaddress.IPv4Network(r.cidr).num_addresses
        return {"VSwitchId": r.id, "VpcId": r.vpc_id, "Status": self._vswitch_status(r), "CidrBlock": r.cidr,
                "ZoneId": r.zone, "RegionId": r.region, "VSwitchName": r.name, "Description": r.description,
                "AvailableIpAddressCount": max(size - 4, 0), "CreationTime": render_time(r.created),
                "IsDefault": False, "ResourceGroupId": "", "Tags": {"Tag": [dict(t) for t in r.tags]}}

    async def delete_vswitch(self, call: Call) -> dict[str, Any]:
        vsw_id = p.text(call.params, "VSwitchId")
        if vsw_id is None:
            raise missing("VSwitchId")
        record = owned(self.vswitches, vsw_id, call.account)
        if record is None or record.region != call.region:
            raise not_found("VSwitch", vsw_id, "VSwitch")
        kind = first_user(self.users, vsw_id)
        if kind:
            raise ApiError(400, "DependencyViolation", f"Specified object has dependent resources ({kind}).")
        if self._vswitch_status(record) != "Available":
            raise incorrect_status("VSwitch")
        del self.vswitches[vsw_id]
        return {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        tasks = [r.task for r in self.vpcs.values() if r.task is not None] + list(self._releases)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
