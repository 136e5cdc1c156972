"""One emulated Classic Load Balancer (SLB): its record, and its views as DescribeLoadBalancers,
DescribeLoadBalancerAttribute and DescribeLoadBalancerListeners show it, in the cloud's field
names (pure, but for the clock passed in)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from . import params as p
from .errors import invalid
from .signature import format_time

BACKEND_TYPES = ("ecs", "eni", "eci")
MAX_TAGS = 20
MAX_SERVERS_PER_CALL = 20  # the cloud's limit for one Add/Remove/SetBackendServers call
# Listener parameters kept as given and shown back (health checks, persistence...).
LISTENER_KEEP = ("Bandwidth", "Scheduler", "PersistenceTimeout", "EstablishedTimeout", "HealthCheckSwitch",
                 "HealthCheckType", "HealthCheckConnectPort", "HealthCheckConnectTimeout", "HealthyThreshold",
                 "UnhealthyThreshold", "healthCheckInterval", "Description")


@dataclass
class ListenerRecord:
    protocol: str  # "tcp" | "udp", as the cloud spells it in answers
    port: int
    backend_port: int
    status: str = "stopped"  # a new listener waits for StartLoadBalancerListener
    params: dict[str, str] = field(default_factory=dict)

    @property
    def persistence(self) -> int:
        try:
            return int(self.params.get("PersistenceTimeout") or 0)
        except ValueError:
            return 0


@dataclass
class ServerRecord:
    server_id: str
    type: str
    ip: str
    weight: int
    description: str = ""
    local_key: str | None = None  # the local VPC its address is in (the local data plane's)

    @property
    def key(self) -> tuple[str, str]:
        return (self.server_id, self.ip)

    def render(self) -> dict[str, Any]:
        return {"ServerId": self.server_id, "Type": self.type, "ServerIp": self.ip, "Weight": self.weight,
                "Description": self.description}


@dataclass
class LbRecord:
    id: str
    seq: int
    region: str
    name: str
    address_type: str
    address: str
    vpc_id: str
    vswitch_id: str
    spec: str
    tags: list[dict[str, str]]
    created: float
    account: str  # whose key made it (accounts.py)
    local_key: str | None = None  # intranet: its VPC's key on the local data plane
    status: str = "active"
    listeners: dict[tuple[str, int], ListenerRecord] = field(default_factory=dict)
    servers: dict[tuple[str, str], ServerRecord] = field(default_factory=dict)

    def tagged(self, key: str, value: str | None) -> bool:
        return any(t["Key"] == key and (value is None or t["Value"] == value) for t in self.tags)


def render(lb: LbRecord) -> dict[str, Any]:
    """One element of DescribeLoadBalancers' LoadBalancers.LoadBalancer."""
    return {
        "LoadBalancerId": lb.id, "LoadBalancerName": lb.name, "LoadBalancerStatus": lb.status,
        "Address": lb.address, "AddressType": lb.address_type, "AddressIPVersion": "ipv4",
        "RegionId": lb.region, "RegionIdAlias": lb.region, "VpcId": lb.vpc_id, "VSwitchId": lb.vswitch_id,
        "NetworkType": "vpc" if lb.vpc_id else "classic", "LoadBalancerSpec": lb.spec,
        "InternetChargeType": "paybytraffic", "PayType": "PayOnDemand",
        "CreateTime": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(lb.created)),
        "CreateTimeStamp": int(lb.created * 1000),
        "Tags": {"Tag": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in lb.tags]},
    }


def render_attribute(lb: LbRecord) -> dict[str, Any]:
    """DescribeLoadBalancerAttribute's answer: the LB, its listeners' ports and its backends."""
    out = render(lb)
    out.pop("Tags")
    ports = sorted(lb.listeners.values(), key=lambda lst: (lst.port, lst.protocol))
    pairs = [{"ListenerPort": lst.port, "ListenerProtocol": lst.protocol} for lst in ports]
    out.update({
        "ListenerPorts": {"ListenerPort": [lst.port for lst in ports]},
        "ListenerPortsAndProtocol": {"ListenerPortAndProtocol": pairs},
        "ListenerPortsAndProtocal": {"ListenerPortAndProtocal": pairs},  # the cloud's own spelling, also sent
        "BackendServers": {"BackendServer": [s.render() for s in lb.servers.values()]},
        "CreateTime": format_time(lb.created),
    })
    return out


def render_listener(lb: LbRecord, lst: ListenerRecord) -> dict[str, Any]:
    """One element of DescribeLoadBalancerListeners' Listeners."""
    config = {k: _number(v) for k, v in lst.params.items() if k not in ("Bandwidth", "Scheduler", "Description")}
    return {"LoadBalancerId": lb.id, "ListenerPort": lst.port, "ListenerProtocol": lst.protocol,
            "BackendServerPort": lst.backend_port, "Status": lst.status,
            "Bandwidth": _number(lst.params.get("Bandwidth", "-1")), "Scheduler": lst.params.get("Scheduler", "wrr"),
            "Description": lst.params.get("Description", ""),
            f"{lst.protocol.upper()}ListenerConfig": config}


def _number(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value


def parse_servers(raw: str | None, *, name: str = "BackendServers") -> list[dict[str, Any]]:
    """BackendServers: a JSON array of {ServerId, Type, ServerIp, Weight, Port, Description};
    checked, with Type ecs and Weight 100 by default. Port is accepted (the cloud's examples
    send it) but the default server group forwards each listener to its BackendServerPort."""
    if raw in (None, "", "None"):
        raise invalid(name, "It is required.")
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid(name, "It is not a JSON array.") from None
    if not isinstance(value, list) or not value or not all(isinstance(s, dict) for s in value):
        raise invalid(name, "It is not a JSON array of backend servers.")
    if len(value) > MAX_SERVERS_PER_CALL:
        raise invalid(name, f"At most {MAX_SERVERS_PER_CALL} backend servers a call.")
    out = []
    for i, s in enumerate(value, 1):
        server_id, kind = s.get("ServerId"), str(s.get("Type") or "ecs").lower()
        if not isinstance(server_id, str) or not server_id:
            raise invalid(f"{name}.{i}.ServerId", "It is required.")
        if kind not in BACKEND_TYPES:
            raise invalid(f"{name}.{i}.Type", f"One of {', '.join(BACKEND_TYPES)}.")
        ip = s.get("ServerIp") or ""
        if kind in ("eni", "eci") and not ip:
            raise invalid(f"{name}.{i}.ServerIp", f"It is required for a backend server of type {kind}.")
        try:
            weight = int(s.get("Weight", 100))
        except (TypeError, ValueError):
            raise invalid(f"{name}.{i}.Weight", "It is not an integer.") from None
        if not 0 <= weight <= 100:
            raise invalid(f"{name}.{i}.Weight", "It is out of range [0, 100].")
        out.append({"ServerId": server_id, "Type": kind, "ServerIp": str(ip), "Weight": weight,
                    "Description": str(s.get("Description") or "")[:80]})
    return out


def tags_of(params: dict[str, str]) -> list[dict[str, str]]:
    tags = p.unflatten({k: v for k, v in params.items() if k.startswith("Tag.")}).get("Tag", [])
    if len(tags) > MAX_TAGS or any(not isinstance(t, dict) or not t.get("Key") for t in tags):
        raise invalid("Tag", f"At most {MAX_TAGS} tags, each with a Key.")
    return [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags]


def tag_filters(params: dict[str, str]) -> list[dict[str, str | None]]:
    """Tag.N.Key/Value and Tags (a JSON array of {TagKey, TagValue}, either case)."""
    out: list[dict[str, str | None]] = [{"Key": t["Key"], "Value": t["Value"] or None} for t in tags_of(params)]
    raw = p.text(params, "Tags")
    if raw is not None:
        try:
            items = json.loads(raw)
        except ValueError:
            raise invalid("Tags", "It is not a JSON array.") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise invalid("Tags", "It is not a JSON array of tags.")
        for item in items:
            low = {k.lower(): v for k, v in item.items()}
            if not low.get("tagkey"):
                raise invalid("Tags", "Each tag needs a TagKey.")
            out.append({"Key": str(low["tagkey"]), "Value": str(low["tagvalue"]) if low.get("tagvalue") else None})
    return out
