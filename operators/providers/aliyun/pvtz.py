"""PrivateZones on Alibaba Cloud's PrivateZone (PVTZ): a tenant's zone is a PVTZ zone bound
to the tenant's VPC, its record sets PVTZ records.

- Finding the zone: names repeat across tenants (each has its `cluster.local`) and AddZone
  takes no ClientToken in the SDK sk8s uses, so the zone is the one of that name whose
  Remark is `pvtz_records.zone_remark(home, zone uid)`, set by UpdateZoneRemark right
  after AddZone. AddZone is never sent twice blindly: when its answer is lost, the zones of
  the name are listed again, and the one that appeared without a remark since the listing
  before the add is ours (adds of one name are serialised in this process). A zone left
  without a remark by a crash between the two calls is not adopted (nothing says whose).
- VPCs: sk8s's VPC ids are cluster uids; the cloud's VpcId is found by the cluster's
  tags (network.find_network). A cluster whose network is not there yet is a retryable
  error. The resolver a sandbox of the VPC asks is the VPC layout's (the kube-dns
  ClusterIP), the same address the local provider uses.
- Records are brought to the wanted ones (pvtz_records.plan_records) from a paged
  DescribeZoneRecords, then the VPC list is set when it differs.
- delete(): every zone with the remark is unbound and deleted; Zone.NotExists is done.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any, Awaitable, Callable

from ..errors import ProviderError
from ..local.vpc import VpcLayout
from ..services import PrivateZones
from .client import AliyunClient, AliyunError
from .pvtz_records import (
    CloudRecord, bind_params, cloud_records, existing_record, plan_records, record_params, zone_remark,
)

log = logging.getLogger(__name__)
PAGE = 100  # the largest page PVTZ listings give
GONE = ("Zone.NotExists", "Zone.Invalid.Id", "Record.NotExists", "Record.Invalid.Id")
FindNetwork = Callable[[AliyunClient, str, str], Awaitable[Any]]  # -> CloudNetwork | None


def _requests():
    from aliyunsdkpvtz.request.v20180101 import (
        AddZoneRecordRequest, AddZoneRequest, BindZoneVpcRequest, DeleteZoneRecordRequest, DeleteZoneRequest,
        DescribeZoneInfoRequest, DescribeZoneRecordsRequest, DescribeZonesRequest, UpdateZoneRecordRequest,
        UpdateZoneRemarkRequest,
    )
    return {m.__name__.rsplit(".", 1)[-1]: getattr(m, m.__name__.rsplit(".", 1)[-1]) for m in (
        AddZoneRecordRequest, AddZoneRequest, BindZoneVpcRequest, DeleteZoneRecordRequest, DeleteZoneRequest,
        DescribeZoneInfoRequest, DescribeZoneRecordsRequest, DescribeZonesRequest, UpdateZoneRecordRequest,
        UpdateZoneRemarkRequest)}


async def _find_network(client: AliyunClient, home_id: str, cluster_uid: str):
    from .network import find_network
    return await find_network(client, home_id, cluster_uid)


def resolver_of(cidr: str) -> str:
    return VpcLayout(ipaddress.ip_network(cidr)).resolver


def _gone(exc: AliyunError) -> bool:
    return exc.code in GONE


class AliyunPrivateZones(PrivateZones):
    name = "aliyun"

    def __init__(self, client: AliyunClient, home_id: str, *, find_network: FindNetwork | None = None):
        self.client = client
        self.home_id = home_id
        self.find_network = find_network or _find_network
        self.req = _requests()
        self._ids: dict[str, tuple[str, str]] = {}  # sk8s zone uid -> (the cloud's ZoneId, zone name)
        self._unmarked: dict[str, str] = {}  # added, its remark not set yet
        self._adding: dict[str, asyncio.Lock] = {}  # by zone name

    async def _call(self, action: str, params: dict[str, Any], **kw) -> dict:
        return await self.client.call(self.req[action + "Request"], params, **kw)

    # -- the interface -------------------------------------------------------------------

    async def ensure(self, zone_id: str, zone_name: str, vpc_ids: list[str], records: list[dict]) -> list[str]:
        networks = [await self._network(v) for v in vpc_ids]
        cloud_id = await self._zone(zone_id, zone_name)
        try:
            await self._sync_records(cloud_id, cloud_records(records))
            await self._bind(cloud_id, [n.vpc_id for n in networks])
        except AliyunError as exc:
            if _gone(exc):  # deleted behind our back: found or made again next time
                self._ids.pop(zone_id, None)
            raise
        return [resolver_of(n.cidr) for n in networks]

    async def delete(self, zone_id: str) -> None:
        remark = zone_remark(self.home_id, zone_id)
        ids = {z["ZoneId"] for z in await self._zones(None) if z.get("Remark") == remark}
        ids |= {i for i in (self._ids.pop(zone_id, ("",))[0], self._unmarked.pop(zone_id, None)) if i}
        for cloud_id in ids:
            await self._remove(cloud_id)

    async def _remove(self, cloud_id: str) -> None:
        try:
            await self._call("BindZoneVpc", bind_params(cloud_id, self.client.region, []))
            await self._call("DeleteZone", {"ZoneId": cloud_id})
        except AliyunError as exc:
            if not _gone(exc):
                raise

    async def vpc_resolver(self, vpc_id: str) -> str:
        return resolver_of((await self._network(vpc_id)).cidr)

    # -- zones ---------------------------------------------------------------------------

    async def _network(self, cluster_uid: str):
        network = await self.find_network(self.client, self.home_id, cluster_uid)
        if network is None:
            raise ProviderError(f"the VPC of cluster {cluster_uid} is not in the cloud (yet)",
                                reason="VpcNotFound", retryable=True)
        return network

    async def _zones(self, name: str | None) -> list[dict]:
        """Every zone of the name (all zones: None), all pages."""
        out, number = [], 1
        while True:
            params = {"PageNumber": number, "PageSize": PAGE}
            if name is not None:
                params.update(Keyword=name, SearchMode="EXACT")
            page = await self._call("DescribeZones", params)
            out += (page.get("Zones") or {}).get("Zone") or []
            if number >= int(page.get("TotalPages") or 0):
                return [z for z in out if name is None or z.get("ZoneName", "").lower() == name.lower()]
            number += 1

    async def _zone(self, zone_id: str, zone_name: str) -> str:
        cached = self._ids.get(zone_id)
        if cached and cached[1] == zone_name.lower():
            return cached[0]
        remark = zone_remark(self.home_id, zone_id)
        async with self._adding.setdefault(zone_name.lower(), asyncio.Lock()):
            if zone_id not in self._unmarked:
                zones = await self._zones(zone_name)
                mine = [z["ZoneId"] for z in zones if z.get("Remark") == remark]
                if mine:
                    self._ids[zone_id] = (mine[0], zone_name.lower())
                    return mine[0]
                # Made anew: a zone of this PrivateZone under an earlier name (PVTZ renames
                # nothing) would go on answering that name in its VPCs.
                for old in [z["ZoneId"] for z in await self._zones(None) if z.get("Remark") == remark]:
                    await self._remove(old)
                self._unmarked[zone_id] = await self._add(zone_name, zones)
            try:
                await self._call("UpdateZoneRemark", {"ZoneId": self._unmarked[zone_id], "Remark": remark})
            except AliyunError as exc:
                if _gone(exc):  # removed meanwhile: the next ensure adds again
                    self._unmarked.pop(zone_id, None)
                raise
            self._ids[zone_id] = (self._unmarked.pop(zone_id), zone_name.lower())
            return self._ids[zone_id][0]

    async def _add(self, zone_name: str, before: list[dict]) -> str:
        """AddZone, once; after a failure, the zone it may have made all the same."""
        try:
            return (await self._call("AddZone", {"ZoneName": zone_name}, idempotent=False))["ZoneId"]
        except AliyunError as exc:
            if exc.http_status is not None and not exc.retryable:
                raise  # refused: nothing was made
            failure = exc
        seen = {z["ZoneId"] for z in before}
        new = [z["ZoneId"] for z in await self._zones(zone_name) if z["ZoneId"] not in seen and not z.get("Remark")]
        if len(new) == 1:
            log.info("AddZone %s: no answer (%s), the zone it made is %s", zone_name, failure.code, new[0])
            return new[0]
        raise failure

    async def _bind(self, cloud_id: str, vpc_ids: list[str]) -> None:
        info = await self._call("DescribeZoneInfo", {"ZoneId": cloud_id})
        bound = [v.get("VpcId") for v in (info.get("BindVpcs") or {}).get("Vpc") or []]
        if sorted(bound) != sorted(vpc_ids):
            await self._call("BindZoneVpc", bind_params(cloud_id, self.client.region, vpc_ids))

    # -- records -------------------------------------------------------------------------

    async def _records(self, cloud_id: str) -> list[tuple[int, CloudRecord]]:
        out, number = [], 1
        while True:
            page = await self._call("DescribeZoneRecords", {"ZoneId": cloud_id, "PageNumber": number,
                                                            "PageSize": PAGE})
            out += [existing_record(r) for r in (page.get("Records") or {}).get("Record") or []]
            if number >= int(page.get("TotalPages") or 0):
                return out
            number += 1

    async def _sync_records(self, cloud_id: str, wanted: list[CloudRecord]) -> None:
        plan = plan_records(wanted, await self._records(cloud_id))
        for record_id in plan.delete:
            try:
                await self._call("DeleteZoneRecord", {"RecordId": record_id})
            except AliyunError as exc:
                if not _gone(exc):
                    raise
        for record_id, r in plan.update:
            await self._call("UpdateZoneRecord", {"RecordId": record_id, **record_params(r)})
        for r in plan.add:
            # Not sent again after a lost answer (a second add is a conflict); the next
            # ensure sees whether it was made.
            await self._call("AddZoneRecord", {"ZoneId": cloud_id, **record_params(r)}, idempotent=False)
