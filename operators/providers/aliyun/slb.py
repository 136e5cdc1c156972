"""The aliyun provider's load balancers: each ServiceLB is one SLB (Classic Load Balancer).

Nothing is remembered between runs that the cloud does not hold: an SLB is found by its
tags (the installation and the ServiceLB's uid), else made with a ClientToken (slb_spec),
so an operator killed at any point converges when it runs again. What `ensure` costs in
calls: DescribeLoadBalancers (find), CreateLoadBalancer once, DescribeLoadBalancerListeners,
DescribeLoadBalancerAttribute, the cluster's ECI groups (paged, 20 a call, to map backend
addresses to group ids), DescribeHealthStatus, and only the changes besides.

`state()` answers from the last ensure or health poll: every `health_interval` each SLB
this run ensured is asked for DescribeHealthStatus, and `on_health_change` is called when
what it reports changed.

The `kubernetes` Service (spec.api_server: the tenant's API server, a process on the
operator's host) cannot be an SLB backend: SLB forwards to ECS, ENI or ECI instances, not
to an address outside the cloud. Such specs are refused with reason NotSupported.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkslb.request.v20140515.AddBackendServersRequest import AddBackendServersRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerTCPListenerRequest import CreateLoadBalancerTCPListenerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerUDPListenerRequest import CreateLoadBalancerUDPListenerRequest
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerListenerRequest import DeleteLoadBalancerListenerRequest
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerRequest import DeleteLoadBalancerRequest
from aliyunsdkslb.request.v20140515.DescribeHealthStatusRequest import DescribeHealthStatusRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerAttributeRequest import DescribeLoadBalancerAttributeRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerListenersRequest import DescribeLoadBalancerListenersRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import DescribeLoadBalancersRequest
from aliyunsdkslb.request.v20140515.RemoveBackendServersRequest import RemoveBackendServersRequest
from aliyunsdkslb.request.v20140515.SetBackendServersRequest import SetBackendServersRequest
from aliyunsdkslb.request.v20140515.StartLoadBalancerListenerRequest import StartLoadBalancerListenerRequest

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME
from ..errors import ProviderError
from ..services import LBSpec, LBState, LoadBalancers
from . import slb_spec as s
from .client import AliyunClient, AliyunError
from .eci_status import tag_value

log = logging.getLogger(__name__)
PAGE = 100  # DescribeLoadBalancers' largest PageSize
GROUP_PAGE = 20  # DescribeContainerGroups' largest Limit
LIVE = {"Running", "Pending", "Restarting", "Updating"}  # groups whose address is theirs
Finder = Callable[[AliyunClient, str, str], Awaitable[object]]


def _gone(err: AliyunError) -> bool:
    return err.code.endswith("NotFound") or "does not exist" in str(err)


async def _default_finder(client: AliyunClient, home_id: str, cluster_uid: str):
    from .network import find_network
    return await find_network(client, home_id, cluster_uid)


class AliyunLoadBalancers(LoadBalancers):
    name = "aliyun"

    def __init__(self, client: AliyunClient, home_id: str, *, find_network: Finder | None = None,
                 health_interval: float = 5.0):
        self.client, self.home_id = client, home_id
        self.find_network = find_network or _default_finder
        self.health_interval = health_interval
        self._states: dict[str, LBState] = {}
        # uid -> (SLB id, its address, the spec, backends left out and why)
        self._ensured: dict[str, tuple[str, str, LBSpec, dict[str, str]]] = {}
        self._networks: dict[str, object] = {}  # cluster uid -> its complete CloudNetwork
        self._health: asyncio.Task | None = None

    # -- start-up -------------------------------------------------------------------------

    async def setup(self, known: dict[str, str]) -> None:
        """Delete the SLBs of this installation no ServiceLB records (orphans of a run that
        died, or of ServiceLBs deleted meanwhile). A cloud out of reach or refusing the key is
        logged, not fatal: a restart would not fix it, and each ensure then fails with the reason."""
        self._start_health()
        try:
            for lb in await self._list(s.tags(self.home_id, None)):
                uid = s.uid_of(lb)
                if uid not in known:
                    log.warning("deleting orphaned SLB %s (ServiceLB %s)", lb["LoadBalancerId"], uid)
                    await self._delete_lb(lb["LoadBalancerId"])
        except ProviderError as err:
            log.warning("orphaned SLBs not collected at start: %s", err)

    def _start_health(self) -> None:
        if self._health is None or self._health.done():
            self._health = asyncio.create_task(self._poll_health(), name="slb-health")

    # -- ensure ---------------------------------------------------------------------------

    async def ensure(self, spec: LBSpec, address: str | None) -> LBState:
        if spec.api_server:
            raise ProviderError("spec.apiServer: an SLB cannot forward to the cluster's API server (a process "
                                "outside the cloud); the aliyun provider does not serve it", reason="NotSupported",
                                retryable=False)
        self._start_health()
        lb = await self._find(spec.id)
        lb = await self._check_address(spec, lb, address)
        if lb is None:
            lb = await self._create(spec, address)
        lb_id = lb["LoadBalancerId"]
        await self._sync_listeners(lb_id, spec)
        refused = await self._sync_servers(lb_id, spec)
        self._ensured[spec.id] = (lb_id, lb.get("Address", ""), spec, refused)
        return await self._read_state(spec.id)

    async def _find(self, uid: str) -> dict | None:
        found = await self._list(s.tags(self.home_id, None, uid))
        return found[0] if found else None

    async def _list(self, filters: dict[str, str]) -> list[dict]:
        out: list[dict] = []
        number = 1
        while True:
            answer = await self.client.call(DescribeLoadBalancersRequest, {
                "RegionId": self.client.region, **filters, "PageNumber": str(number), "PageSize": str(PAGE)})
            items = (answer.get("LoadBalancers") or {}).get("LoadBalancer") or []
            out += items
            if not items or number * PAGE >= int(answer.get("TotalCount") or 0):
                return out
            number += 1

    async def _check_address(self, spec: LBSpec, lb: dict | None, recorded: str | None) -> dict | None:
        """The SLB found, unless it no longer fits the spec: another address type, or another
        intranet address asked for (SLB cannot move an address: made anew). An internet SLB's
        address is the cloud's: one asked for is refused unless it is the one it has."""
        asked = spec.load_balancer_ip
        has = (lb or {}).get("Address") if (lb or {}).get("AddressType") == "internet" else None
        if spec.address_type == "internet" and asked and asked != has:
            raise ProviderError(f"spec.loadBalancerIP: {asked} cannot be chosen for an internet SLB "
                                f"(the cloud allocates its address{f'; it has {has}' if has else ''})",
                                reason="AddressUnavailable", retryable=False)
        if lb is None:
            return None
        if lb.get("AddressType") == spec.address_type and (spec.address_type == "internet" or not asked
                                                           or asked == lb.get("Address")):
            return lb
        log.info("SLB %s of ServiceLB %s no longer fits its spec: made anew", lb["LoadBalancerId"], spec.id)
        await self._delete_lb(lb["LoadBalancerId"])
        return None

    async def _network(self, cluster_uid: str):
        network = self._networks.get(cluster_uid)
        if network is None:
            network = await self.find_network(self.client, self.home_id, cluster_uid)
            if network is None or not getattr(network, "service_vswitch_id", ""):
                raise ProviderError(f"the network of cluster {cluster_uid} is not made yet (no service VSwitch)",
                                    reason="NetworkNotReady")
            self._networks[cluster_uid] = network
        return network

    async def _create(self, spec: LBSpec, recorded: str | None) -> dict:
        vswitch = vpc = None
        if spec.address_type == "intranet":
            if not spec.vpc_id:
                raise ProviderError("an intranet load balancer needs a VPC", reason="InvalidSpec", retryable=False)
            network = await self._network(spec.vpc_id)
            vswitch, vpc = network.service_vswitch_id, network.vpc_id
        address = (spec.load_balancer_ip or recorded) if spec.address_type == "intranet" else None
        params = s.create_params(spec, self.home_id, vswitch_id=vswitch, vpc_id=vpc, address=address)
        answer = await self.client.call(CreateLoadBalancerRequest, {"RegionId": self.client.region, **params})
        return {"LoadBalancerId": answer["LoadBalancerId"], "Address": answer.get("Address", ""),
                "AddressType": spec.address_type}

    async def _sync_listeners(self, lb_id: str, spec: LBSpec) -> None:
        rows, token = [], None
        while True:
            answer = await self.client.call(DescribeLoadBalancerListenersRequest, {
                "RegionId": self.client.region, "LoadBalancerId.1": lb_id, "MaxResults": "100", "NextToken": token})
            rows += answer.get("Listeners") or []
            token = answer.get("NextToken")
            if not token:
                break
        plan = s.plan_listeners(rows, spec)
        for protocol, port in plan.delete:
            await self._call_ignoring(DeleteLoadBalancerListenerRequest, {
                "LoadBalancerId": lb_id, "ListenerPort": str(port), "ListenerProtocol": protocol}, _gone)
        for lst in plan.create:
            request = CreateLoadBalancerTCPListenerRequest if lst.protocol == "TCP" else CreateLoadBalancerUDPListenerRequest
            # Already there: this create's answer was lost, or a run before died after it.
            await self._call_ignoring(request, s.listener_params(lb_id, lst, spec),
                                      lambda e: e.code == "ListenerAlreadyExists")
        for protocol, port in plan.start:
            await self.client.call(StartLoadBalancerListenerRequest, {
                "RegionId": self.client.region, "LoadBalancerId": lb_id, "ListenerPort": str(port),
                "ListenerProtocol": protocol})

    async def _call_ignoring(self, request: type, params: dict, done: Callable[[AliyunError], bool]) -> None:
        try:
            await self.client.call(request, {"RegionId": self.client.region, **params})
        except AliyunError as err:
            if not done(err):
                raise

    async def _groups_by_ip(self, cluster_uid: str | None) -> dict[str, str]:
        """The installation's (or one cluster's) live ECI groups by address."""
        params = {"RegionId": self.client.region, "Limit": GROUP_PAGE, "Tag.1.Key": LABEL_HOME,
                  "Tag.1.Value": tag_value(self.home_id)}
        if cluster_uid:
            params.update({"Tag.2.Key": LABEL_CLUSTER_UID, "Tag.2.Value": tag_value(cluster_uid)})
        out: dict[str, str] = {}
        token = None
        while True:
            answer = await self.client.call(DescribeContainerGroupsRequest, {**params, "NextToken": token})
            for g in answer.get("ContainerGroups") or []:
                if g.get("IntranetIp") and g.get("Status") in LIVE:
                    out[g["IntranetIp"]] = g["ContainerGroupId"]
            token = answer.get("NextToken")
            if not token:
                return out

    async def _sync_servers(self, lb_id: str, spec: LBSpec) -> dict[str, str]:
        groups = await self._groups_by_ip(spec.vpc_id) if spec.backends else {}
        wanted, refused = s.wanted_servers(spec, groups)
        if refused:
            log.warning("SLB %s: backends left out: %s", lb_id, "; ".join(f"{ip}: {why}" for ip, why in refused.items()))
        attribute = await self.client.call(DescribeLoadBalancerAttributeRequest, {
            "RegionId": self.client.region, "LoadBalancerId": lb_id})
        plan = s.plan_servers((attribute.get("BackendServers") or {}).get("BackendServer") or [], wanted)
        for request, items in ((RemoveBackendServersRequest, plan.remove), (AddBackendServersRequest, plan.add),
                               (SetBackendServersRequest, plan.set)):
            for chunk in s.chunks(items):
                await self.client.call(request, {"RegionId": self.client.region, "LoadBalancerId": lb_id,
                                                 "BackendServers": chunk})
        return refused

    # -- health ---------------------------------------------------------------------------

    async def _read_state(self, uid: str) -> LBState:
        lb_id, address, spec, refused = self._ensured[uid]
        answer = await self.client.call(DescribeHealthStatusRequest, {"RegionId": self.client.region,
                                                                      "LoadBalancerId": lb_id})
        rows = (answer.get("BackendServers") or {}).get("BackendServer") or []
        state = s.state_from(address, spec, rows, refused)
        if uid in self._ensured:  # not deleted meanwhile
            self._states[uid] = state
        return state

    async def _poll_health(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            for uid, (_, _, spec, _) in list(self._ensured.items()):
                if not spec.listeners or not spec.backends:
                    continue  # no check to report: no call
                before = self._states.get(uid)
                try:
                    after = await self._read_state(uid)
                except (ProviderError, KeyError) as err:  # the next poll tries again; deleted: skipped
                    log.debug("health of ServiceLB %s: %s", uid, err)
                    continue
                if before != after and self.on_health_change:
                    self.on_health_change(uid)

    def state(self, lb_id: str) -> LBState | None:
        return self._states.get(lb_id)

    # -- delete ---------------------------------------------------------------------------

    async def delete(self, lb_id: str, address: str | None = None, vpc_id: str | None = None) -> None:
        self._ensured.pop(lb_id, None)
        self._states.pop(lb_id, None)
        for lb in await self._list(s.tags(self.home_id, None, lb_id)):
            await self._delete_lb(lb["LoadBalancerId"])

    async def _delete_lb(self, slb_id: str) -> None:
        await self._call_ignoring(DeleteLoadBalancerRequest, {"LoadBalancerId": slb_id}, _gone)

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            await asyncio.gather(self._health, return_exceptions=True)
