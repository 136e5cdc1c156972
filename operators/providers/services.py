"""Provider interfaces for a tenant's services: load balancers and private DNS zones.

Shaped after the cloud's (SLB and PrivateZone): an LB has an address of a type
(internet, or intranet inside a VPC), listeners and a backend group; a zone has record
sets and answers in the VPCs it is bound to. Calls are idempotent and keyed by the
object's uid, so an operator killed at any point converges when it runs again.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class LBListener:
    protocol: str  # "TCP" | "UDP"
    port: int
    target_port: int


@dataclass
class LBSpec:
    id: str  # the ServiceLB's uid
    address_type: str  # "internet" | "intranet"
    vpc_id: str | None  # intranet: where the address lives; both: the only network backends may be in
    listeners: list[LBListener]
    backends: list[str]  # IPs of ready endpoints
    load_balancer_ip: str | None = None  # the address asked for (a Service's spec.loadBalancerIP)
    # (host, port) of the cluster's own API server, found by the operator (never from the
    # spec): every listener forwards there and `backends` are not used.
    api_server: tuple[str, int] | None = None
    affinity_seconds: int | None = None  # sessionAffinity ClientIP: a client keeps its backend this long
    # IP -> the (protocol, port, target port) it serves, for backends that serve only some
    # listeners or on other ports; a backend not named here serves every listener on its target_port.
    backend_ports: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    # The object's resourceVersion this spec was read from (None: unknown): `ensure` and
    # `follow` (a watch's) may arrive out of order, and older backends never replace newer.
    version: int | None = None
    # The ServiceLB's namespace and name (None: unknown), for providers that make objects
    # next to it in the meta-cluster (metapod: a Service owned by it).
    namespace: str | None = None
    name: str | None = None

    def targets(self, lst: "LBListener", ips: list[str]) -> list[tuple[str, int]]:
        """(ip, port) of the backends among `ips` that serve `lst`."""
        out = []
        for ip in ips:
            ports = self.backend_ports.get(ip)
            if ports is None:
                out.append((ip, lst.target_port))
            else:
                out += [(ip, t) for proto, port, t in ports if (proto, port) == (lst.protocol, lst.port)]
        return out


@dataclass
class BackendHealth:
    ip: str
    port: int
    healthy: bool
    message: str | None = None


@dataclass
class LBState:
    address: str
    listeners: list[tuple[LBListener, int]] = field(default_factory=list)  # with healthy backend counts
    backends: list[BackendHealth] = field(default_factory=list)


class LoadBalancers(abc.ABC):
    name: str = "abstract"
    on_health_change: Callable[[str], None] | None = None

    async def setup(self, known: dict[str, str]) -> None:
        """Start-up: `known` maps LB ids to the addresses their status records, which stay
        reserved for them; anything the provider holds beyond those is an orphan to free."""

    @abc.abstractmethod
    async def ensure(self, spec: LBSpec, address: str | None) -> LBState:
        """Create or update; `address` is the one recorded before (kept if still valid)."""

    async def follow(self, spec: LBSpec) -> bool:
        """Takes new backends of an LB served now, ahead of `ensure` (a fast path, fed by a
        watch): only when nothing but `backends`/`backend_ports` changed since the last
        `ensure`, which checked everything else. False: not taken, `ensure` will do it."""
        return False

    @abc.abstractmethod
    def state(self, lb_id: str) -> LBState | None:
        """What the LB serves now, with backend health."""

    @abc.abstractmethod
    async def delete(self, lb_id: str, address: str | None = None, vpc_id: str | None = None) -> None:
        """Stop serving and free the address. Idempotent. `address` and `vpc_id` are what the
        object records, so that an LB this run never served still has its address freed."""


class PrivateZones(abc.ABC):
    name: str = "abstract"

    async def setup(self) -> None:
        """Start-up (shared resources)."""

    @abc.abstractmethod
    async def ensure(self, zone_id: str, zone_name: str, vpc_ids: list[str],
                     records: list[dict]) -> list[str]:
        """Create or update the zone and its VPC bindings; return the resolvers' addresses."""

    @abc.abstractmethod
    async def delete(self, zone_id: str) -> None:
        """Remove the zone and its records. Idempotent."""

    @abc.abstractmethod
    async def vpc_resolver(self, vpc_id: str) -> str:
        """The address a sandbox in this VPC resolves names through."""
