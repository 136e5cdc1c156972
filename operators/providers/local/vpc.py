"""Tenant VPCs on the local provider: one isolated podman bridge network per tenant.

Each VPC is a /23: pods take addresses from the lower /24 (podman's IPAM is told so with
`--ip-range`), the upper /24 belongs to the VPC's services: intranet load balancer
addresses and, at the top, the VPC resolver. Those service addresses live in a small
"anchor" pod on the network, whose network namespace the LB and DNS operators bind their
sockets in. Traffic from other tenants' networks is dropped by the bridge isolation, the
same as for their pods; the host reaches every VPC.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...config import vpc_pool
from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME, LABEL_VPC
from ..errors import ProviderError
from . import firewall
from .podman import Podman

VPC_PREFIX = 23


@dataclass(frozen=True)
class VpcLayout:
    subnet: ipaddress.IPv4Network

    @property
    def pod_range(self) -> ipaddress.IPv4Network:
        return next(self.subnet.subnets(new_prefix=self.subnet.prefixlen + 1))

    @property
    def service_range(self) -> ipaddress.IPv4Network:
        return list(self.subnet.subnets(new_prefix=self.subnet.prefixlen + 1))[1]

    @property
    def resolver(self) -> str:
        return str(self.subnet.broadcast_address - 1)

    def service_addresses(self) -> list[str]:
        """Addresses an intranet load balancer may take, lowest first."""
        # .0 and .255 are valid inside a /23 but confuse people and some tools.
        return [str(a) for a in self.service_range if str(a) != self.resolver
                and a != self.subnet.broadcast_address and str(a).split(".")[-1] not in ("0", "255")]


def pick_subnet(used: list[ipaddress.IPv4Network], pool: ipaddress.IPv4Network,
                prefix: int = VPC_PREFIX) -> ipaddress.IPv4Network:
    """The first /23 of the pool that overlaps no existing network."""
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise ProviderError(f"no free /{prefix} left in the VPC pool {pool}", reason="VpcPoolExhausted")


# Holds are per host, not per installation: the VPC pool and podman's networks are the
# host's, and two installations (test sessions) cut their VPCs from the same pool.
HOST_HOLDS = Path("/run/sk8s/vpc-subnets")
HOLD_GRACE = 60.0  # seconds a hold counts without a live owner (its network is being made)
# A released VPC's mark: its cluster is gone, and no late caller (an operator's retry or
# start-up pass, in another process) may make its network again. Cluster uids are unique.
HOST_RELEASED = Path("/run/sk8s/released-vpcs")
# The file in a control plane's directory (the owner of its hold) naming the cluster that
# claimed it (serverlesscluster/planes.py).
CLAIM_FILE = "claimed-by"


class SubnetHolds:
    """Subnets of the pool held for an owner, one file each (name: the subnet, '/' as '-').

    A hold's content is its owner: a directory (a control plane's), alive as long as that
    directory exists, or a name, alive for HOLD_GRACE (by then its network exists, which
    podman reports). A dead hold is removed, so a deleted installation frees its ranges."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, subnet: ipaddress.IPv4Network) -> Path:
        return self.directory / str(subnet).replace("/", "-")

    @staticmethod
    def _alive(f: Path) -> bool:
        try:
            owner, age = f.read_text().strip(), time.time() - f.stat().st_mtime
        except FileNotFoundError:
            return False
        return age < HOLD_GRACE or (owner.startswith("/") and os.path.isdir(owner))

    def held(self) -> list[ipaddress.IPv4Network]:
        out = []
        for f in self.directory.glob("*-*") if self.directory.is_dir() else []:
            try:
                subnet = ipaddress.ip_network(f.name.replace("-", "/"))
            except ValueError:
                continue
            if self._alive(f):
                out.append(subnet)
            else:
                f.unlink(missing_ok=True)
        return out

    def claimed_by(self, claim: str) -> ipaddress.IPv4Network | None:
        """The subnet held for a control plane that `claim` (a cluster uid) owns: its directory
        names it in CLAIM_FILE. A caller that makes the VPC lazily (an operator resuming
        before the cluster's own) then makes it with the plane's plan, not a range of its own."""
        for f in self.directory.glob("*-*") if self.directory.is_dir() else []:
            try:
                owner = f.read_text().strip()
                if owner.startswith("/") and (Path(owner) / CLAIM_FILE).read_text().strip() == claim:
                    return ipaddress.ip_network(f.name.replace("-", "/"))
            except (OSError, ValueError):
                continue
        return None

    def try_hold(self, subnet: ipaddress.IPv4Network, owner: str) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(subnet)
        if path.exists() and not self._alive(path):
            path.unlink(missing_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(owner)
        return True

    def release(self, subnet: ipaddress.IPv4Network) -> None:
        self._path(subnet).unlink(missing_ok=True)


@dataclass
class Vpc:
    id: str
    network: str
    layout: VpcLayout
    gateway: str
    netns: str  # the anchor pod's network namespace (a bind-mounted nsfs path)


class LocalVpcs:
    def __init__(self, podman: Podman, home_id: str, pool: str | None = None, holds: Path | None = None):
        self.podman = podman
        self.home_id = home_id
        self.pool = ipaddress.ip_network(pool or vpc_pool())
        self.holds = SubnetHolds(holds or HOST_HOLDS)
        self.released = (holds.parent / "released-vpcs") if holds else HOST_RELEASED
        self._cache: dict[str, Vpc] = {}
        self.protected: tuple[str, ...] = ()  # networks no VPC may reach (the provider's own)
        self._locks: dict[str, asyncio.Lock] = {}

    def network_name(self, vpc_id: str) -> str:
        # The name the tenant networks always had, so existing clusters keep theirs.
        return f"sk8s-{self.home_id}-{vpc_id[:12]}"

    def anchor_name(self, vpc_id: str) -> str:
        return f"{self.network_name(vpc_id)}-vpc"

    async def reserve(self, owner: str) -> ipaddress.IPv4Network:
        """Hold the first /23 of the pool that no network has and nobody holds."""
        used = await self._used_subnets() + self.holds.held()
        for _ in range(64):
            subnet = pick_subnet(used, self.pool)
            if self.holds.try_hold(subnet, owner):
                return subnet
            used.append(subnet)  # held by another process meanwhile
        raise ProviderError("no free subnet in the VPC pool after retries", reason="VpcPoolExhausted")

    def release_hold(self, subnet: str) -> None:
        self.holds.release(ipaddress.ip_network(subnet))

    async def ensure(self, vpc_id: str, subnet: str | None = None) -> Vpc:
        """The VPC, made if missing: with `subnet` (its control plane's plan, held by `reserve`),
        else the existing network's, else a newly held one."""
        cached = self._cache.get(vpc_id)
        if cached and os.path.exists(cached.netns) and subnet in (None, str(cached.layout.subnet)):
            return cached
        lock = self._locks.setdefault(vpc_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(vpc_id)
            if cached and os.path.exists(cached.netns) and subnet in (None, str(cached.layout.subnet)):
                return cached
            if self._released_mark(vpc_id).exists():
                raise ProviderError(f"VPC {vpc_id} was released with its cluster", reason="ClusterDeleted")
            network, layout, gateway = await self._ensure_network(vpc_id, subnet)
            try:
                await firewall.isolate(str(layout.subnet), str(self.pool), firewall.tag_of(self.home_id, vpc_id),
                                       self.protected)
            except (RuntimeError, OSError) as exc:
                raise ProviderError(f"VPC {vpc_id}: {exc}", reason="IsolationFailed") from exc
            netns = await self._ensure_anchor(vpc_id, network, layout)
            vpc = Vpc(vpc_id, network, layout, gateway, netns)
            self._cache[vpc_id] = vpc
            return vpc

    async def _inspect_network(self, name: str) -> tuple[VpcLayout, str] | None:
        res = await self.podman.run("network", "inspect", name, check=False)
        if res.rc != 0:
            return None
        net = json.loads(res.out)
        net = net[0] if isinstance(net, list) else net
        sub = (net.get("subnets") or [{}])[0]
        return VpcLayout(ipaddress.ip_network(sub["subnet"])), sub.get("gateway") or ""

    async def _used_subnets(self) -> list[ipaddress.IPv4Network]:
        nets = await self.podman.json("network", "ls", "--format=json")
        used = []
        for n in nets if isinstance(nets, list) else []:
            for s in n.get("subnets") or []:
                try:
                    used.append(ipaddress.ip_network(s["subnet"]))
                except (KeyError, ValueError):
                    pass
        return used

    async def _ensure_network(self, vpc_id: str, planned: str | None = None) -> tuple[str, VpcLayout, str]:
        name = self.network_name(vpc_id)
        for _ in range(8):
            found = await self._inspect_network(name)
            if found:
                if planned and str(found[0].subnet) != planned:
                    raise ProviderError(f"VPC network {name} has {found[0].subnet}, but its control plane's "
                                        f"plan is {planned}", reason="VpcMismatch")
                return name, *found
            planned = planned or (str(held) if (held := self.holds.claimed_by(vpc_id)) else None)
            subnet = ipaddress.ip_network(planned) if planned else await self.reserve(f"vpc {vpc_id}")
            layout = VpcLayout(subnet)
            res = await self.podman.run(
                "network", "create", f"--subnet={subnet}", f"--ip-range={layout.pod_range}",
                # Tenant networks drop traffic from every other isolated network; our own
                # resolver replaces podman's (aardvark) one.
                "--opt=isolate=true", "--disable-dns",
                f"--label={LABEL_HOME}={self.home_id}", f"--label={LABEL_CLUSTER_UID}={vpc_id}",
                f"--label={LABEL_VPC}={vpc_id}", name, check=False)
            if res.rc != 0 and "already exists" not in res.err and ("already used" not in res.err or planned):
                raise ProviderError(f"creating VPC network {name}: {res.err.strip()}",
                                    reason="SubnetInUse" if "already used" in res.err else None)
            # "already used" (a network podman did not list): the hold stays, so the next
            # round picks another subnet.
        raise ProviderError(f"creating VPC network {name}: no free subnet after retries")

    async def _ensure_anchor(self, vpc_id: str, network: str, layout: VpcLayout) -> str:
        name = self.anchor_name(vpc_id)
        res = await self.podman.run("pod", "create", f"--name={name}", f"--network={network}",
                                    f"--ip={layout.resolver}", f"--label={LABEL_HOME}={self.home_id}",
                                    f"--label={LABEL_VPC}={vpc_id}", check=False)
        if res.rc != 0 and "already exists" not in res.err:
            raise ProviderError(f"creating the VPC anchor {name}: {res.err.strip()}")
        await self.podman.run("pod", "start", name)
        netns = await self._anchor_netns(name)
        if not netns:
            raise ProviderError(f"VPC anchor {name} has no network namespace")
        return netns

    async def _anchor_netns(self, name: str) -> str | None:
        res = await self.podman.run("pod", "inspect", name, "--format={{.InfraContainerID}}", check=False)
        infra = res.out.strip() if res.rc == 0 else ""
        if not infra:
            return None
        res = await self.podman.run("inspect", infra, "--format={{.NetworkSettings.SandboxKey}}", check=False)
        netns = res.out.strip() if res.rc == 0 else ""
        return netns if netns and os.path.exists(netns) else None

    async def find(self, vpc_id: str) -> Vpc | None:
        """The VPC if it exists, without creating it (a deletion must never bring one back)."""
        cached = self._cache.get(vpc_id)
        if cached and os.path.exists(cached.netns):
            return cached
        found = await self._inspect_network(self.network_name(vpc_id))
        netns = await self._anchor_netns(self.anchor_name(vpc_id)) if found else None
        return Vpc(vpc_id, self.network_name(vpc_id), found[0], found[1], netns) if found and netns else None

    async def sandbox_network(self) -> tuple[ipaddress.IPv4Network, str] | None:
        """The installation's network for sandboxes outside any VPC (an admin's SandboxPods):
        its subnet and the host's gateway on it, or None before the SandboxPod operator made it."""
        found = await self._inspect_network(f"sk8s-{self.home_id}")  # LocalProvider's default network
        return (found[0].subnet, found[1]) if found else None

    def _released_mark(self, vpc_id: str) -> Path:
        return self.released / f"{self.home_id}-{vpc_id}"

    async def release(self, vpc_id: str) -> None:
        # Marked first: whatever still runs for this cluster elsewhere makes no new network.
        self.released.mkdir(parents=True, exist_ok=True)
        self._released_mark(vpc_id).touch()
        self._cache.pop(vpc_id, None)
        found = await self._inspect_network(self.network_name(vpc_id))
        await firewall.release(firewall.tag_of(self.home_id, vpc_id))
        await self.podman.run("pod", "rm", "--force", "--ignore", "--time=0", self.anchor_name(vpc_id), check=False)
        await self.podman.run("network", "rm", "--force", self.network_name(vpc_id), check=False)
        if found:
            self.holds.release(found[0].subnet)
