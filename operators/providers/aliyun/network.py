"""A tenant cluster's network in the cloud: one VPC with the tenant's range, a pod VSwitch
(the lower half, where its ECI groups go), a service VSwitch (the upper half, where its
intranet SLBs take their ClusterIPs) and one security group for its groups.

Everything is tagged with the installation (LABEL_HOME) and the cluster (LABEL_CLUSTER_UID)
and found by those tags: nothing is remembered between calls. Every create carries a
ClientToken made from the cluster's uid and the resource's role, so a retry after a lost
answer finds what the first call made instead of making a second one. The halves are the
local provider's VPC layout (providers/local/vpc.py), so the VPC resolver, the kube-dns
ClusterIP, is the same address on both providers.

The cloud makes VPCs and VSwitches asynchronously (Pending, then Available) and refuses a
VSwitch in a Pending VPC (IncorrectVpcStatus): `ensure_network` waits for each, a bounded
while, and says what it waited for if the cloud is slower (a retryable ProviderError).
Deleting goes from the inside out (security group, VSwitches, VPC); while the cloud still
holds groups or SLBs in them it answers DependencyViolation, a retryable ProviderError:
the caller tries again once they are gone."""
from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any

from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteSecurityGroupRequest import DeleteSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
from aliyunsdkvpc.request.v20160428.DeleteVSwitchRequest import DeleteVSwitchRequest
from aliyunsdkvpc.request.v20160428.DeleteVpcRequest import DeleteVpcRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME
from ..errors import ProviderError
from ..local.vpc import VpcLayout
from .client import AliyunClient, AliyunError
from .eci_status import tag_value, untag_value

PAGE = 50  # the largest PageSize of DescribeVpcs, DescribeVSwitches, DescribeSecurityGroups
WAIT, POLL = 30.0, 0.5  # seconds: how long ensure waits for Available, and how often it looks
ROLES = ("pods", "services")


@dataclass(frozen=True)
class CloudNetwork:
    vpc_id: str
    pod_vswitch_id: str  # "" while missing (find_network of a half-made network)
    service_vswitch_id: str
    security_group_id: str
    cidr: str

    @property
    def complete(self) -> bool:
        return bool(self.pod_vswitch_id and self.service_vswitch_id and self.security_group_id)

    @property
    def resolver(self) -> str:
        return VpcLayout(ipaddress.ip_network(self.cidr)).resolver


# -- pure builders ---------------------------------------------------------------------------

def tag_params(home_id: str, cluster_uid: str | None = None) -> dict[str, str]:
    """Tag.N of a create, or the Tag.N filters of a Describe (without a cluster: every
    network of the installation)."""
    out = {"Tag.1.Key": LABEL_HOME, "Tag.1.Value": tag_value(home_id)}
    if cluster_uid is not None:
        out.update({"Tag.2.Key": LABEL_CLUSTER_UID, "Tag.2.Value": tag_value(cluster_uid)})
    return out


def client_token(cluster_uid: str, role: str = "") -> str:
    return f"sk8s-{cluster_uid}" + (f"-{role}" if role else "")


def halves(cidr: str) -> dict[str, str]:
    """{"pods": lower half, "services": upper half} of the tenant's range."""
    layout = VpcLayout(ipaddress.ip_network(cidr, strict=True))
    return {"pods": str(layout.pod_range), "services": str(layout.service_range)}


def vpc_params(home_id: str, cluster_uid: str, cidr: str) -> dict[str, str]:
    return {"CidrBlock": cidr, "VpcName": f"sk8s-{cluster_uid}", "ClientToken": client_token(cluster_uid),
            "Description": "sk8s tenant cluster VPC", **tag_params(home_id, cluster_uid)}


def vswitch_params(home_id: str, cluster_uid: str, vpc_id: str, zone_id: str, cidr: str, role: str) -> dict[str, str]:
    return {"VpcId": vpc_id, "ZoneId": zone_id, "CidrBlock": halves(cidr)[role],
            "VSwitchName": f"sk8s-{cluster_uid}-{role}", "ClientToken": client_token(cluster_uid, role),
            **tag_params(home_id, cluster_uid)}


def security_group_params(home_id: str, cluster_uid: str, vpc_id: str) -> dict[str, str]:
    return {"VpcId": vpc_id, "SecurityGroupName": f"sk8s-{cluster_uid}", "SecurityGroupType": "normal",
            "ClientToken": client_token(cluster_uid, "sg"), "Description": "sk8s tenant cluster pods",
            **tag_params(home_id, cluster_uid)}


def cluster_of(tags: list[dict[str, Any]]) -> str | None:
    """The cluster uid a resource's tags name (VPC spelling {Key, Value} or ECS {TagKey, TagValue})."""
    for t in tags:
        if (t.get("Key") or t.get("TagKey")) == LABEL_CLUSTER_UID:
            return untag_value(t.get("Value") or t.get("TagValue") or "")
    return None


def network_from(vpc: dict, vswitches: list[dict], groups: list[dict]) -> CloudNetwork:
    """The network as described: the VSwitches told apart by their ranges."""
    want = halves(vpc["CidrBlock"])
    by_cidr = {v["CidrBlock"]: v["VSwitchId"] for v in vswitches if v.get("VpcId") == vpc["VpcId"]}
    group = next((g["SecurityGroupId"] for g in groups if g.get("VpcId") == vpc["VpcId"]), "")
    return CloudNetwork(vpc["VpcId"], by_cidr.get(want["pods"], ""), by_cidr.get(want["services"], ""), group,
                        vpc["CidrBlock"])


# -- calls -------------------------------------------------------------------------------------

async def _pages(client: AliyunClient, request: type, params: dict[str, str], *path: str) -> list[dict]:
    out: list[dict] = []
    number = 1
    while True:
        answer = await client.call(request, {**params, "PageNumber": str(number), "PageSize": str(PAGE)})
        items = answer
        for key in path:
            items = (items or {}).get(key) or {}
        out += items or []
        if number * PAGE >= int(answer.get("TotalCount") or 0) or not items:
            return out
        number += 1


async def _vpcs(client: AliyunClient, home_id: str, cluster_uid: str | None = None, **extra: str) -> list[dict]:
    return await _pages(client, DescribeVpcsRequest, {**tag_params(home_id, cluster_uid), **extra}, "Vpcs", "Vpc")


async def _vswitches(client: AliyunClient, **filters: str) -> list[dict]:
    return await _pages(client, DescribeVSwitchesRequest, filters, "VSwitches", "VSwitch")


async def _groups(client: AliyunClient, home_id: str, cluster_uid: str | None = None, **extra: str) -> list[dict]:
    params = {"RegionId": client.region, **tag_params(home_id, cluster_uid), **extra}
    return await _pages(client, DescribeSecurityGroupsRequest, params, "SecurityGroups", "SecurityGroup")


async def find_network(client: AliyunClient, home_id: str, cluster_uid: str) -> CloudNetwork | None:
    """The cluster's network as the cloud holds it (parts not made yet are ""), None without a VPC."""
    vpcs = await _vpcs(client, home_id, cluster_uid)
    if not vpcs:
        return None
    vpc = vpcs[0]
    return network_from(vpc, await _vswitches(client, VpcId=vpc["VpcId"]),
                        await _groups(client, home_id, cluster_uid, VpcId=vpc["VpcId"]))


async def list_networks(client: AliyunClient, home_id: str) -> dict[str, CloudNetwork]:
    """Every cluster network of this installation, by cluster uid (three paged listings)."""
    vpcs = await _vpcs(client, home_id)
    switches = await _vswitches(client, **tag_params(home_id))
    groups = await _groups(client, home_id)
    out: dict[str, CloudNetwork] = {}
    for vpc in vpcs:
        uid = cluster_of((vpc.get("Tags") or {}).get("Tag") or [])
        if uid and uid not in out:
            out[uid] = network_from(vpc, switches, groups)
    return out


async def _available(client: AliyunClient, what: str, describe, timeout: float = WAIT) -> None:
    """Wait until `describe()` shows the resource Available."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await describe()
        if status == "Available":
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ProviderError(f"{what} is still {status or 'not listed'} after {timeout:.0f}s",
                                reason="NetworkPending", retryable=True)
        await asyncio.sleep(POLL)


async def _status_of_vpc(client: AliyunClient, vpc_id: str) -> str:
    answer = await client.call(DescribeVpcsRequest, {"VpcId": vpc_id})
    return next((v.get("Status", "") for v in (answer.get("Vpcs") or {}).get("Vpc") or []), "")


async def _status_of_vswitch(client: AliyunClient, vsw_id: str) -> str:
    answer = await client.call(DescribeVSwitchesRequest, {"VSwitchId": vsw_id})
    return next((v.get("Status", "") for v in (answer.get("VSwitches") or {}).get("VSwitch") or []), "")


async def ensure_network(client: AliyunClient, home_id: str, cluster_uid: str, cidr: str, *,
                         zone_id: str | None) -> CloudNetwork:
    """The cluster's network, made where missing; every part Available when it returns."""
    if not zone_id:
        raise ProviderError("SK8S_ALIYUN_ZONE must be set: a tenant's VSwitches are made in that zone",
                            reason="MissingConfiguration", retryable=False)
    found = await find_network(client, home_id, cluster_uid)
    if found is None:
        answer = await client.call(CreateVpcRequest, vpc_params(home_id, cluster_uid, cidr))
        found = CloudNetwork(answer["VpcId"], "", "", "", cidr)
    if found.cidr != cidr:
        raise ProviderError(f"the cloud VPC {found.vpc_id} of cluster {cluster_uid} has {found.cidr}, "
                            f"its plan {cidr}", reason="VpcMismatch", retryable=False)
    vpc_id = found.vpc_id
    await _available(client, f"VPC {vpc_id}", lambda: _status_of_vpc(client, vpc_id))
    ids = {"pods": found.pod_vswitch_id, "services": found.service_vswitch_id}
    for role in ROLES:
        if not ids[role]:
            answer = await client.call(CreateVSwitchRequest,
                                       vswitch_params(home_id, cluster_uid, vpc_id, zone_id, cidr, role))
            ids[role] = answer["VSwitchId"]
    group = found.security_group_id
    if not group:
        answer = await client.call(CreateSecurityGroupRequest, security_group_params(home_id, cluster_uid, vpc_id))
        group = answer["SecurityGroupId"]
    for role in ROLES:
        await _available(client, f"VSwitch {ids[role]}", lambda v=ids[role]: _status_of_vswitch(client, v))
    return CloudNetwork(vpc_id, ids["pods"], ids["services"], group, cidr)


def _dependency(err: AliyunError, what: str) -> ProviderError:
    """What a deletion still waits for: groups or load balancers leaving, a VPC settling."""
    return ProviderError(f"{what} is still in use: {err}", reason="DependencyViolation", retryable=True)


async def _delete(client: AliyunClient, request: type, params: dict[str, str], what: str) -> None:
    try:
        await client.call(request, params)
    except AliyunError as err:
        if "NotFound" in err.code:
            return
        if err.code.startswith(("DependencyViolation", "IncorrectVpcStatus", "IncorrectVSwitchStatus")):
            raise _dependency(err, what) from None
        raise


async def delete_network(client: AliyunClient, home_id: str, cluster_uid: str) -> None:
    """Remove the cluster's security groups, VSwitches and VPCs (idempotent: gone is done)."""
    for vpc in await _vpcs(client, home_id, cluster_uid):
        vpc_id = vpc["VpcId"]
        for group in await _groups(client, home_id, cluster_uid, VpcId=vpc_id):
            await _delete(client, DeleteSecurityGroupRequest,
                          {"RegionId": client.region, "SecurityGroupId": group["SecurityGroupId"]},
                          f"security group {group['SecurityGroupId']}")
        for vsw in await _vswitches(client, VpcId=vpc_id):
            await _delete(client, DeleteVSwitchRequest, {"VSwitchId": vsw["VSwitchId"]}, f"VSwitch {vsw['VSwitchId']}")
        await _delete(client, DeleteVpcRequest, {"VpcId": vpc_id}, f"VPC {vpc_id}")
