"""Server Load Balancer (Classic Load Balancer, API version 2014-05-15): the subset sk8s's
provider calls, with the cloud's semantics.

- CreateLoadBalancer: AddressType internet (default) or intranet; an intranet SLB lives in a
  VSwitch (VSwitchId required, VpcId checked against it) on the Address given (in the
  VSwitch's CIDR block, not another SLB's) or the lowest free one; an internet SLB gets an
  address from the backend. A ClientToken makes it idempotent (same token, same
  parameters: the first id; other parameters: IdempotentParameterMismatch). Tag.N.
- DescribeLoadBalancers filters by LoadBalancerId (comma-separated), Tag.N / Tags (JSON
  [{"TagKey", "TagValue"}]), VpcId, VSwitchId, AddressType, Address, LoadBalancerName; pages
  by PageNumber / PageSize (default 50, at most 100) with TotalCount.
- Listeners (Create*TCP/UDPListener) are created stopped; Start/Stop/DeleteLoadBalancerListener
  take ListenerPort (+ ListenerProtocol when the port has both). A port already used by a
  listener of the same protocol: ListenerAlreadyExists.
- Backends are the default server group: Add/Remove/SetBackendServers (BackendServers JSON,
  at most 20 a call). Each running listener forwards to every backend of non-zero weight on
  its BackendServerPort. A backend must exist (type eci: an ECI group of this emulator, its
  ServerIp the group's IntranetIp) and be in the SLB's VPC (intranet) or, for an internet
  SLB, all backends in one VPC (the local data plane serves an SLB inside one network).
- DescribeHealthStatus: each running listener's backends, normal or abnormal as the
  backend's checks say; a stopped listener's are unavailable.
- Unknown ids: HTTP 404 InvalidLoadBalancerId.NotFound; an unknown listener: 400
  InvalidParameter "The specified resource does not exist." (the cloud's words).
- Accounts (accounts.py): a call sees its own account's SLBs only, and places them in, and
  adds as backends, its own account's VSwitches and groups; another account's id is an
  unknown one."""
from __future__ import annotations

import ipaddress
import secrets
import string
import time
from typing import Any, Awaitable, Callable, Protocol

from ...models.contracts import LABEL_CLUSTER_UID
from ...providers.aliyun.eci_status import untag_value
from . import params as p
from .eci import Call
from .errors import ApiError, invalid, missing
from .resources import ClientTokens, owned
from .slb_backends import LbBackend
from .slb_records import (LISTENER_KEEP, LbRecord, ListenerRecord, ServerRecord, parse_servers, render,
                          render_attribute, render_listener, tag_filters, tags_of)

VERSION = "2014-05-15"
PRODUCT = "Slb"
HOST_ID = "slb.aliyuncs.com"
ADDRESS_TYPES = ("internet", "intranet")
RESERVED_TAIL = 3  # the cloud keeps a VSwitch's last addresses for itself
ListenerKey = tuple[str, int]


class VpcDirectory(Protocol):
    """The VPC API's records, as the SLB API needs them (vpc.VpcService)."""

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None:
        """The VPC's key on the local data plane, None: the account has no such VPC."""

    def vswitch(self, vsw_id: str, account: str | None = None) -> dict | None:
        """The VSwitch ({"VpcId", "CidrBlock", ...}), None: the account has no such VSwitch."""


class ServerDirectory(Protocol):
    def server(self, server_id: str, kind: str, account: str) -> tuple[str, str, dict[str, str]] | None:
        """(IntranetIp, VSwitchId, tags) of a backend server, None: the account has no such server."""


class EciServers:
    """Backend servers of type eci: the ECI API's container groups."""

    def __init__(self, eci: Any) -> None:
        self.eci = eci

    def server(self, server_id: str, kind: str, account: str) -> tuple[str, str, dict[str, str]] | None:
        record = owned(self.eci.groups, server_id, account) if kind == "eci" else None
        if record is None:
            return None
        return record.ip, record.group.get("VSwitchId", ""), {t["Key"]: t["Value"] for t in record.tags}


def not_found(lb_id: str) -> ApiError:
    return ApiError(404, "InvalidLoadBalancerId.NotFound", f"The specified LoadBalancerId {lb_id} does not exist.")


def listener_missing() -> ApiError:
    return ApiError(400, "InvalidParameter", "The specified resource does not exist.")


def new_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "lb-" + "".join(secrets.choice(alphabet) for _ in range(22))


class SlbService:
    version = VERSION
    product = PRODUCT
    host_id = HOST_ID

    def __init__(self, vpcs: VpcDirectory, servers: ServerDirectory, backend: LbBackend,
                 clock: Callable[[], float] = time.time):
        self.vpcs, self.servers, self.backend, self.clock = vpcs, servers, backend, clock
        self.lbs: dict[str, LbRecord] = {}
        self.tokens = ClientTokens()
        self._seq = 0

    def actions(self) -> dict[str, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {"CreateLoadBalancer": self.create, "DescribeLoadBalancers": self.describe,
                "DeleteLoadBalancer": self.delete, "DescribeLoadBalancerAttribute": self.attribute,
                "CreateLoadBalancerTCPListener": self.create_tcp, "CreateLoadBalancerUDPListener": self.create_udp,
                "StartLoadBalancerListener": self.start_listener, "StopLoadBalancerListener": self.stop_listener,
                "DeleteLoadBalancerListener": self.delete_listener, "DescribeLoadBalancerListeners": self.listeners,
                "AddBackendServers": self.add_servers, "RemoveBackendServers": self.remove_servers,
                "SetBackendServers": self.set_servers, "DescribeHealthStatus": self.health}

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {"LoadBalancer": [
            {"LoadBalancerId": lb.id, "LoadBalancerName": lb.name, "AddressType": lb.address_type,
             "Address": lb.address, "VpcId": lb.vpc_id, "VSwitchId": lb.vswitch_id, "RegionId": lb.region,
             "Listeners": [f"{lst.protocol}/{lst.port}" for lst in lb.listeners.values()],
             "BackendServers": [s.server_id for s in lb.servers.values()], "Tags": lb.tags,
             "Account": lb.account}
            for lb in sorted(self.lbs.values(), key=lambda lb: lb.seq)]}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.backend.close()

    def in_vswitch(self, vsw_id: str) -> list[str]:
        """SLBs in a VSwitch (the VPC API refuses to delete it while there are)."""
        return [lb.id for lb in self.lbs.values() if lb.vswitch_id == vsw_id]

    # -- load balancers --------------------------------------------------------------------

    async def create(self, call: Call) -> dict[str, Any]:
        earlier = self.tokens.seen("CreateLoadBalancer", call.account, call.region, call.params)
        if earlier is not None and earlier in self.lbs:
            return self._created(self.lbs[earlier])
        f = call.params
        address_type = (p.text(f, "AddressType") or "internet").lower()
        if address_type not in ADDRESS_TYPES:
            raise invalid("AddressType", "One of internet, intranet.")
        vpc_id, vsw_id, address, key = self._placement(f, address_type, call.account)
        self._seq += 1
        lb = LbRecord(id=new_id(), seq=self._seq, region=call.region, name=p.text(f, "LoadBalancerName") or "",
                      address_type=address_type, address=address, vpc_id=vpc_id, vswitch_id=vsw_id,
                      spec=p.text(f, "LoadBalancerSpec") or "", tags=tags_of(f), created=self.clock(), local_key=key,
                      account=call.account)
        lb.name = lb.name or f"auto_named_slb_{lb.id[3:11]}"
        lb.address = await self.backend.serve(lb)
        self.lbs[lb.id] = lb
        self.tokens.remember("CreateLoadBalancer", call.account, call.region, call.params, lb.id)
        return self._created(lb)

    @staticmethod
    def _created(lb: LbRecord) -> dict[str, Any]:
        return {"LoadBalancerId": lb.id, "Address": lb.address, "LoadBalancerName": lb.name, "VpcId": lb.vpc_id,
                "VSwitchId": lb.vswitch_id, "NetworkType": "vpc" if lb.vpc_id else "classic",
                "AddressIPVersion": "ipv4", "ResourceGroupId": "rg-default"}

    def _placement(self, f: dict[str, str], address_type: str, account: str) -> tuple[str, str, str, str | None]:
        """(VpcId, VSwitchId, Address, local key) of a new SLB."""
        vsw_id, vpc_id, address = p.text(f, "VSwitchId"), p.text(f, "VpcId"), p.text(f, "Address")
        if address_type == "internet":
            if address is not None:
                raise invalid("Address", "An internet load balancer's address is allocated, not chosen.")
            return "", "", "", None
        if vsw_id is None:
            raise missing("VSwitchId")
        vsw = self.vpcs.vswitch(vsw_id, account)
        if vsw is None:
            raise ApiError(404, "InvalidVSwitchId.NotFound", f"The specified VSwitchId {vsw_id} does not exist.")
        if vpc_id is not None and vpc_id != vsw.get("VpcId"):
            raise invalid("VpcId", f"The VSwitch {vsw_id} is not in the VPC {vpc_id}.")
        vpc_id = vsw["VpcId"]
        key = self.vpcs.local_key(vpc_id, account)
        if key is None:
            raise ApiError(404, "InvalidVpcId.NotFound", f"The specified VpcId {vpc_id} does not exist.")
        return vpc_id, vsw_id, self._intranet_address(vsw, vpc_id, address), key

    def _intranet_address(self, vsw: dict, vpc_id: str, wanted: str | None) -> str:
        cidr = ipaddress.ip_network(vsw["CidrBlock"])
        used = {lb.address for lb in self.lbs.values() if lb.vpc_id == vpc_id}
        hosts = list(cidr.hosts())[:-RESERVED_TAIL]
        if wanted is not None:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                raise invalid("Address", "It is not an IPv4 address.") from None
            if ip not in hosts:
                raise invalid("Address", f"It is not an address of the VSwitch's CIDR block {cidr}.")
            if wanted in used:
                raise ApiError(400, "InvalidParam.Address", f"The specified Address {wanted} is already used.")
            return wanted
        for ip in hosts:
            if str(ip) not in used and str(ip).split(".")[-1] not in ("0", "255"):
                return str(ip)
        raise ApiError(400, "VSwitchAvailableIp.NotEnough", "The VSwitch has no free address left.")

    def _lb(self, call: Call) -> LbRecord:
        lb_id = p.text(call.params, "LoadBalancerId")
        if lb_id is None:
            raise missing("LoadBalancerId")
        lb = owned(self.lbs, lb_id, call.account)
        if lb is None or lb.region != call.region:
            raise not_found(lb_id)
        return lb

    async def describe(self, call: Call) -> dict[str, Any]:
        f = call.params
        ids = set((p.text(f, "LoadBalancerId") or "").replace(" ", "").split(",")) - {""}
        tags = tag_filters(f)
        wanted = {k: p.text(f, k) for k in ("VpcId", "VSwitchId", "AddressType", "Address", "LoadBalancerName")}
        number = p.integer(f, "PageNumber", 1, low=1)
        size = p.integer(f, "PageSize", 50, low=1, high=100)
        views = {"VpcId": "vpc_id", "VSwitchId": "vswitch_id", "AddressType": "address_type", "Address": "address",
                 "LoadBalancerName": "name"}
        matches = [lb for lb in sorted(self.lbs.values(), key=lambda lb: lb.seq)
                   if lb.region == call.region and lb.account == call.account and (not ids or lb.id in ids)
                   and all(lb.tagged(t["Key"], t["Value"]) for t in tags)
                   and all(v is None or getattr(lb, views[k]) == v for k, v in wanted.items())]
        page = matches[(number - 1) * size:number * size]
        return {"LoadBalancers": {"LoadBalancer": [render(lb) for lb in page]}, "TotalCount": len(matches),
                "PageNumber": number, "PageSize": size}

    async def attribute(self, call: Call) -> dict[str, Any]:
        return render_attribute(self._lb(call))

    async def delete(self, call: Call) -> dict[str, Any]:
        lb = self._lb(call)
        del self.lbs[lb.id]
        await self.backend.delete(lb)
        return {}

    # -- listeners ------------------------------------------------------------------------

    async def create_tcp(self, call: Call) -> dict[str, Any]:
        return await self._create_listener(call, "tcp")

    async def create_udp(self, call: Call) -> dict[str, Any]:
        return await self._create_listener(call, "udp")

    async def _create_listener(self, call: Call, protocol: str) -> dict[str, Any]:
        lb = self._lb(call)
        f = call.params
        port = p.integer(f, "ListenerPort", low=1, high=65535)
        if port is None:
            raise missing("ListenerPort")
        backend_port = p.integer(f, "BackendServerPort", low=1, high=65535)
        if backend_port is None:  # without a server group, the default group needs a port
            raise missing("BackendServerPort")
        p.integer(f, "PersistenceTimeout", low=0, high=3600)
        for name in ("HealthCheckConnectTimeout", "healthCheckInterval", "HealthyThreshold", "UnhealthyThreshold"):
            p.integer(f, name, low=1, high=300)
        if (protocol, port) in lb.listeners:
            raise ApiError(400, "ListenerAlreadyExists", "The specified listener port is already in use.")
        lb.listeners[(protocol, port)] = ListenerRecord(
            protocol, port, backend_port, params={k: f[k] for k in LISTENER_KEEP if p.text(f, k) is not None})
        return {}

    def _listener(self, call: Call, lb: LbRecord) -> ListenerRecord:
        port = p.integer(call.params, "ListenerPort", low=1, high=65535)
        if port is None:
            raise missing("ListenerPort")
        protocol = (p.text(call.params, "ListenerProtocol") or "").lower()
        found = [lst for (proto, lport), lst in lb.listeners.items() if lport == port and protocol in ("", proto)]
        if not found:
            raise listener_missing()
        if len(found) > 1:
            raise missing("ListenerProtocol")
        return found[0]

    async def start_listener(self, call: Call) -> dict[str, Any]:
        return await self._set_status(call, "running")

    async def stop_listener(self, call: Call) -> dict[str, Any]:
        return await self._set_status(call, "stopped")

    async def _set_status(self, call: Call, status: str) -> dict[str, Any]:
        lb = self._lb(call)
        lst = self._listener(call, lb)
        if lst.status != status:
            lst.status = status
            await self._apply(lb)
        return {}

    async def delete_listener(self, call: Call) -> dict[str, Any]:
        lb = self._lb(call)
        lst = self._listener(call, lb)
        del lb.listeners[(lst.protocol, lst.port)]
        await self._apply(lb)
        return {}

    async def listeners(self, call: Call) -> dict[str, Any]:
        f = call.params
        ids = [v for k, v in sorted(f.items()) if k.startswith("LoadBalancerId.") and v]
        protocol = (p.text(f, "ListenerProtocol") or "").lower()
        port = p.integer(f, "ListenerPort", low=1, high=65535)
        limit = p.integer(f, "MaxResults", 20, low=1, high=100)
        token = p.text(f, "NextToken")
        if token is not None and not token.isdigit():
            raise invalid("NextToken")
        start = int(token or 0)
        rows = [render_listener(lb, lst) for lb in sorted(self.lbs.values(), key=lambda lb: lb.seq)
                if lb.region == call.region and lb.account == call.account and (not ids or lb.id in ids)
                for lst in sorted(lb.listeners.values(), key=lambda lst: (lst.port, lst.protocol))
                if protocol in ("", lst.protocol) and port in (None, lst.port)]
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        return {"Listeners": page, "TotalCount": len(rows), "MaxResults": limit,
                "NextToken": str(start + limit) if more else ""}

    # -- backends -------------------------------------------------------------------------

    def _server(self, lb: LbRecord, s: dict[str, Any], i: int) -> ServerRecord:
        found = self.servers.server(s["ServerId"], s["Type"], lb.account)
        if found is None:
            raise invalid(f"BackendServers.{i}.ServerId", f"The backend server {s['ServerId']} does not exist.")
        ip, vsw_id, tags = found
        if s["ServerIp"] and s["ServerIp"] != ip:
            raise invalid(f"BackendServers.{i}.ServerIp", f"The backend server {s['ServerId']} has no address "
                          f"{s['ServerIp']}.")
        vsw = self.vpcs.vswitch(vsw_id, lb.account) if vsw_id else None
        if vsw:
            key = self.vpcs.local_key(vsw["VpcId"], lb.account)
        else:
            key = untag_value(tags.get(LABEL_CLUSTER_UID)) or None
        if lb.address_type == "intranet" and key != lb.local_key:
            raise invalid(f"BackendServers.{i}.ServerId", f"The backend server {s['ServerId']} is not in the "
                          f"load balancer's VPC {lb.vpc_id}.")
        return ServerRecord(s["ServerId"], s["Type"], s["ServerIp"] or ip, s["Weight"], s["Description"], key)

    def _servers(self, lb: LbRecord, raw: str | None) -> list[ServerRecord]:
        return [self._server(lb, s, i) for i, s in enumerate(parse_servers(raw), 1)]

    async def add_servers(self, call: Call) -> dict[str, Any]:
        lb = self._lb(call)
        wanted = self._servers(lb, call.params.get("BackendServers"))
        merged = dict(lb.servers)
        for s in wanted:
            merged.setdefault(s.key, s)  # as the cloud: one already there is not changed
        await self._replace(lb, merged)
        return self._backends_answer(lb)

    async def remove_servers(self, call: Call) -> dict[str, Any]:
        lb = self._lb(call)
        gone = parse_servers(call.params.get("BackendServers"))
        merged = {k: s for k, s in lb.servers.items()
                  if not any(g["ServerId"] == s.server_id and g["ServerIp"] in ("", s.ip) for g in gone)}
        await self._replace(lb, merged)
        return self._backends_answer(lb)

    async def set_servers(self, call: Call) -> dict[str, Any]:
        """Changes the weights of backends already there (the cloud's SetBackendServers)."""
        lb = self._lb(call)
        merged = dict(lb.servers)
        for i, s in enumerate(parse_servers(call.params.get("BackendServers")), 1):
            keys = [k for k, old in merged.items() if old.server_id == s["ServerId"] and s["ServerIp"] in ("", old.ip)]
            if not keys:
                raise invalid(f"BackendServers.{i}.ServerId", f"The backend server {s['ServerId']} is not a "
                              "backend of this load balancer.")
            for k in keys:
                merged[k] = ServerRecord(merged[k].server_id, merged[k].type, merged[k].ip, s["Weight"],
                                         s["Description"] or merged[k].description, merged[k].local_key)
        await self._replace(lb, merged)
        return self._backends_answer(lb)

    async def _replace(self, lb: LbRecord, servers: dict[tuple[str, str], ServerRecord]) -> None:
        keys = {s.local_key for s in servers.values()}
        if lb.address_type == "internet" and len(keys) > 1:
            raise invalid("BackendServers", "The backend servers of a load balancer must be in one VPC.")
        old = (lb.servers, lb.local_key)
        lb.servers = servers
        if lb.address_type == "internet" and servers:
            lb.local_key = keys.pop()
        try:
            await self._apply(lb)
        except ApiError:
            lb.servers, lb.local_key = old
            raise

    @staticmethod
    def _backends_answer(lb: LbRecord) -> dict[str, Any]:
        return {"LoadBalancerId": lb.id, "BackendServers": {"BackendServer": [s.render() for s in lb.servers.values()]}}

    async def _apply(self, lb: LbRecord) -> None:
        lb.address = await self.backend.serve(lb)

    async def health(self, call: Call) -> dict[str, Any]:
        lb = self._lb(call)
        port = p.integer(call.params, "ListenerPort", low=1, high=65535)
        protocol = (p.text(call.params, "ListenerProtocol") or "").lower()
        checks = self.backend.health(lb)
        rows = []
        for lst in sorted(lb.listeners.values(), key=lambda lst: (lst.port, lst.protocol)):
            if port not in (None, lst.port) or protocol not in ("", lst.protocol):
                continue
            for s in lb.servers.values():
                if lst.status != "running":
                    status = "unavailable"
                else:
                    status = "abnormal" if checks.get((s.ip, lst.backend_port)) is False else "normal"
                rows.append({"ServerId": s.server_id, "ServerIp": s.ip, "Port": lst.backend_port,
                             "ListenerPort": lst.port, "Protocol": lst.protocol, "ServerHealthStatus": status})
        return {"BackendServers": {"BackendServer": rows}}


class NoVpcs:
    """A directory without VPCs (an emulator serving no VPC API): intranet SLBs are refused."""

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None:
        return None

    def vswitch(self, vsw_id: str, account: str | None = None) -> dict | None:
        return None


def for_groups(eci: Any, directory: VpcDirectory | None = None) -> SlbService:
    """SLB on the data plane the container groups run on: the local provider's load
    balancers when the groups are real sandboxes (PodmanBackend), else in memory."""
    from .podman_backend import PodmanBackend
    from .slb_backends import LocalLbBackend, MemoryLbBackend
    backend = LocalLbBackend.for_home() if isinstance(eci.backend, PodmanBackend) else MemoryLbBackend()
    return SlbService(directory or NoVpcs(), EciServers(eci), backend)
