"""Elastic Compute Service (ECS, API version 2014-05-26): the security groups of VPCs, the
part sk8s's provider calls, with the cloud's semantics.

- CreateSecurityGroup (VpcId of an emulator VPC: there is no classic network here;
  SecurityGroupName, Description, SecurityGroupType normal|enterprise, ClientToken, Tag.N)
  -> SecurityGroupId, usable at once.
- DescribeSecurityGroups filters by VpcId, SecurityGroupId, SecurityGroupIds (a JSON array,
  up to 100), SecurityGroupName and Tag.N, pages by PageNumber/PageSize; tags come back as
  ECS spells them ({"TagKey", "TagValue"}).
- DeleteSecurityGroup: DependencyViolation (HTTP 403) while a container group uses it;
  an unknown id is InvalidSecurityGroupId.NotFound.
- AuthorizeSecurityGroup keeps the rule (IpProtocol, PortRange, SourceCidrIp or
  SourceGroupId, Policy, Priority) and shows it in the inventory; the local data plane
  does not filter by it (its VPC networks are isolated from each other, open inside,
  which is a normal group's default for its members).
- Accounts (accounts.py): a call lists and names its own account's groups, in its own
  account's VPCs, only; another account's id is an unknown one."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import params as p
from .eci import Call
from .errors import ApiError, invalid, missing
from .resources import ClientTokens, create_tags, first_user, new_id, not_found, owned, page, render_time
from .resources import tag_filters, tagged
from .vpc import VpcService

VERSION = "2014-05-26"
PRODUCT = "Ecs"
HOST_ID = "ecs.aliyuncs.com"
TYPES = ("normal", "enterprise")
MAX_IDS = 100
PROTOCOLS = ("tcp", "udp", "icmp", "gre", "all")


@dataclass
class GroupRecord:
    id: str
    seq: int
    region: str
    vpc_id: str
    name: str
    description: str
    type: str
    tags: list[dict[str, str]]
    created: float
    account: str  # whose key made it (accounts.py)
    rules: list[dict[str, str]] = field(default_factory=list)


class EcsService:
    version = VERSION
    product = PRODUCT
    host_id = HOST_ID

    def __init__(self, vpc: VpcService, *, clock: Callable[[], float] = time.time):
        self.vpc = vpc
        self.clock = clock
        self.groups: dict[str, GroupRecord] = {}
        self.tokens = ClientTokens()
        self.users: list[Callable[[str], str | None]] = []  # security group id -> kind of a member
        self._seq = 0
        vpc.users.append(lambda vpc_id: "SecurityGroup" if any(
            g.vpc_id == vpc_id for g in self.groups.values()) else None)

    def actions(self) -> dict[str, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {"CreateSecurityGroup": self.create, "DescribeSecurityGroups": self.describe,
                "DeleteSecurityGroup": self.delete, "AuthorizeSecurityGroup": self.authorize}

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {"SecurityGroup": [{**self._render(g), "Rules": list(g.rules), "Account": g.account}
                                   for g in sorted(self.groups.values(), key=lambda g: g.seq)]}

    def security_group(self, sg_id: str, account: str | None = None) -> dict | None:
        """The group as DescribeSecurityGroups shows it; None if `account` has no such group."""
        g = owned(self.groups, sg_id, account)
        return self._render(g) if g else None

    async def create(self, call: Call) -> dict[str, Any]:
        earlier = self.tokens.seen("CreateSecurityGroup", call.account, call.region, call.params)
        if earlier is not None:
            return {"SecurityGroupId": earlier}
        f = call.params
        vpc_id = p.text(f, "VpcId")
        if vpc_id is None:
            raise invalid("VpcId", "The emulator has no classic network: a security group belongs to a VPC.")
        vpc = self.vpc.vpc(vpc_id, call.account)
        if vpc is None or vpc["RegionId"] != call.region:
            raise not_found("Vpc", vpc_id, "VPC")
        kind = p.text(f, "SecurityGroupType") or "normal"
        if kind not in TYPES:
            raise invalid("SecurityGroupType", f"One of {', '.join(TYPES)}.")
        self._seq += 1
        record = GroupRecord(id=new_id("sg"), seq=self._seq, region=call.region, vpc_id=vpc_id,
                             name=p.text(f, "SecurityGroupName") or "", description=p.text(f, "Description") or "",
                             type=kind, tags=create_tags(f), created=self.clock(), account=call.account)
        self.groups[record.id] = record
        self.tokens.remember("CreateSecurityGroup", call.account, call.region, f, record.id)
        return {"SecurityGroupId": record.id}

    async def describe(self, call: Call) -> dict[str, Any]:
        f = call.params
        if p.text(f, "NextToken") is not None or p.text(f, "MaxResults") is not None:
            raise invalid("NextToken", "The emulator pages DescribeSecurityGroups by PageNumber and PageSize.")
        ids = p.json_list(f, "SecurityGroupIds", limit=MAX_IDS)
        one, vpc_id, name = p.text(f, "SecurityGroupId"), p.text(f, "VpcId"), p.text(f, "SecurityGroupName")
        filters = tag_filters(f)
        matches = [g for g in sorted(self.groups.values(), key=lambda g: g.seq)
                   if g.region == call.region and g.account == call.account and (ids is None or g.id in ids)
                   and one in (None, g.id)
                   and vpc_id in (None, g.vpc_id) and name in (None, g.name) and tagged(g.tags, filters)]
        shown, paging = page(matches, f)
        return {**paging, "RegionId": call.region, "SecurityGroups": {"SecurityGroup": [self._render(g) for g in shown]}}

    def _render(self, g: GroupRecord) -> dict[str, Any]:
        return {"SecurityGroupId": g.id, "SecurityGroupName": g.name, "Description": g.description,
                "VpcId": g.vpc_id, "SecurityGroupType": g.type, "CreationTime": render_time(g.created),
                "ResourceGroupId": "", "ServiceManaged": False, "RegionId": g.region,
                "Tags": {"Tag": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in g.tags]}}

    def _find(self, call: Call) -> GroupRecord:
        sg_id = p.text(call.params, "SecurityGroupId")
        if sg_id is None:
            raise missing("SecurityGroupId")
        g = owned(self.groups, sg_id, call.account)
        if g is None or g.region != call.region:
            raise not_found("SecurityGroup", sg_id, "security group")
        return g

    async def delete(self, call: Call) -> dict[str, Any]:
        g = self._find(call)
        kind = first_user(self.users, g.id)
        if kind:
            raise ApiError(403, "DependencyViolation",
                           f"There is still a {kind} in the specified security group.")
        del self.groups[g.id]
        return {}

    async def authorize(self, call: Call) -> dict[str, Any]:
        g = self._find(call)
        f = call.params
        protocol = (p.text(f, "IpProtocol") or "").lower()
        if protocol not in PROTOCOLS:
            raise invalid("IpProtocol", f"One of {', '.join(PROTOCOLS)}.")
        ports = p.text(f, "PortRange")
        if ports is None:
            raise missing("PortRange")
        source = {k: v for k in ("SourceCidrIp", "SourceGroupId") if (v := p.text(f, k)) is not None}
        if not source:
            raise missing("SourceCidrIp")
        policy = p.text(f, "Policy") or "accept"
        if policy.lower() not in ("accept", "drop"):
            raise invalid("Policy", "accept or drop.")
        rule = {"IpProtocol": protocol, "PortRange": ports, "Policy": policy.lower(),
                "Priority": str(p.integer(f, "Priority", 1, low=1, high=100)), **source}
        if rule not in g.rules:
            g.rules.append(rule)
        return {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
