"""Local load balancers: a real TCP/UDP proxy per LB, on an address of its own.

Internet LBs take an address from a loopback range (127.x.y.z, reachable from this host
as a public address would be from anywhere); intranet LBs take one from their VPC's
service range, bound inside the VPC's anchor namespace so that only that tenant's pods
(and the host) reach it. Addresses are recorded in each ServiceLB's status; at start-up
the operator hands them back through `setup`, so a restart keeps every address and an
address added by a run that died before recording it is freed.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import socket

from ...config import lb_range
from ...models.contracts import LABEL_HOME, LABEL_VPC
from ..errors import ProviderError
from ..services import BackendHealth, LBListener, LBSpec, LBState, LoadBalancers
from . import netns
from .proxy import BackendSet, Listener, check_tcp
from .vpc import LocalVpcs, Vpc

log = logging.getLogger(__name__)
HEALTH_INTERVAL = 1.0


def internet_range(home_id: str) -> ipaddress.IPv4Network:
    """A /16 of 127/8 per installation, so that two homes on one host never collide."""
    env = lb_range()
    if env:
        return ipaddress.ip_network(env)
    second = 64 + int(hashlib.sha256(home_id.encode()).hexdigest()[:4], 16) % 128
    return ipaddress.ip_network(f"127.{second}.0.0/16")


def _within(ip: str, net: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False


def pick_address(candidates: list[str], taken: set[str], wanted: str | None) -> str:
    """`wanted` if it is a candidate and free, else the lowest free candidate."""
    if wanted and wanted not in taken and wanted in set(candidates):
        return wanted
    for a in candidates:
        if a not in taken:
            return a
    raise ProviderError("no free load balancer address left", reason="AddressExhausted")


def choose_address(candidates: list[str], taken: set[str], *, asked: str | None, recorded: str | None,
                   where: str) -> str:
    """The address asked for in spec.loadBalancerIP, or a refusal naming the field; without
    one, the recorded address if still free, else the lowest free one."""
    if not asked:
        return pick_address(candidates, taken, recorded)
    if asked not in set(candidates):
        raise ProviderError(f"spec.loadBalancerIP: {asked} is not an address this load balancer can take "
                            f"({where})", reason="AddressUnavailable")
    if asked in taken:
        raise ProviderError(f"spec.loadBalancerIP: {asked} is in use by another load balancer",
                            reason="AddressInUse")
    return asked


class _LB:
    def __init__(self, spec: LBSpec, address: str, ns: str | None,
                 backend_net: ipaddress.IPv4Network | None, gateway: str | None) -> None:
        self.spec = spec
        self.address = address
        self.netns = ns
        self.backend_net = backend_net
        self.gateway = gateway  # the host's side of the VPC: never a backend
        self.refused: list[str] = []
        self.listeners: dict[LBListener, Listener] = {}
        self.backends: dict[LBListener, BackendSet] = {}
        self.health_task: asyncio.Task | None = None


class LocalLoadBalancers(LoadBalancers):
    name = "local"

    def __init__(self, vpcs: LocalVpcs, home_id: str) -> None:
        self.vpcs = vpcs
        self.internet = internet_range(home_id)
        self.lbs: dict[str, _LB] = {}
        self.reserved: dict[str, str] = {}  # address -> lb id
        self._lock = asyncio.Lock()

    async def setup(self, known: dict[str, str]) -> None:
        self.reserved = {addr: lb_id for lb_id, addr in known.items() if addr}
        await self._free_orphan_addresses()

    async def _free_orphan_addresses(self) -> None:
        """Intranet addresses in VPC anchors that no ServiceLB records (a run killed mid-way)."""
        pods = await self.vpcs.podman.json("pod", "ps", "--format=json",
                                           f"--filter=label={LABEL_HOME}={self.vpcs.home_id}")
        for pod in pods if isinstance(pods, list) else []:
            vpc_id = (pod.get("Labels") or {}).get(LABEL_VPC)
            if not vpc_id or pod.get("Status") != "Running":
                continue
            # find, never ensure: the VPC of a cluster being deleted may be released
            # meanwhile, and a sweep must not bring it back.
            vpc = await self.vpcs.find(vpc_id)
            if vpc is None:
                continue
            rc, out = await netns.ip(vpc.netns, "-o", "-4", "addr", "show", "dev", "eth0")
            for line in out.splitlines() if rc == 0 else []:
                parts = line.split()
                addr = parts[parts.index("inet") + 1] if "inet" in parts else ""
                ip, _, plen = addr.partition("/")
                if plen == "32" and ip not in self.reserved:
                    log.warning("freeing orphaned LB address %s in VPC %s", ip, vpc_id)
                    await netns.ip(vpc.netns, "addr", "del", f"{ip}/32", "dev", "eth0")

    def _taken(self, lb_id: str) -> set[str]:
        return {a for a, owner in self.reserved.items() if owner != lb_id}

    async def _candidates(self, spec: LBSpec) -> tuple[list[str], Vpc | None, str]:
        """The addresses an LB of this type may take, its VPC (intranet), and their range in words."""
        if spec.address_type == "intranet":
            if not spec.vpc_id:
                raise ProviderError("an intranet load balancer needs a VPC", reason="InvalidSpec")
            vpc = await self.vpcs.ensure(spec.vpc_id)
            return vpc.layout.service_addresses(), vpc, f"the VPC's service range {vpc.layout.service_range}"
        return [str(a) for a in self.internet.hosts()], None, f"the internet range {self.internet}"

    async def _allocate(self, spec: LBSpec, wanted: str | None) -> tuple[str, str | None]:
        candidates, vpc, where = await self._candidates(spec)
        address = choose_address(candidates, self._taken(spec.id), asked=spec.load_balancer_ip, recorded=wanted,
                                 where=where)
        self.reserved[address] = spec.id
        if vpc is None:
            return address, None
        rc, out = await netns.ip(vpc.netns, "addr", "add", f"{address}/32", "dev", "eth0")
        if rc != 0 and "File exists" not in out and "already assigned" not in out:
            raise ProviderError(f"adding {address} to VPC {spec.vpc_id}: {out}")
        return address, vpc.netns

    async def _backend_net(self, spec: LBSpec) -> tuple[ipaddress.IPv4Network | None, str | None]:
        """Where backends may be: the VPC's pod range, or for an LB without a VPC (an admin's,
        in front of admin SandboxPods) the installation's sandbox network; never the host."""
        if spec.vpc_id:
            vpc = await self.vpcs.ensure(spec.vpc_id)
            return vpc.layout.pod_range, vpc.gateway
        found = await self.vpcs.sandbox_network()
        return found if found else (None, None)  # None: no backend at all

    async def ensure(self, spec: LBSpec, address: str | None) -> LBState:
        async with self._lock:
            lb = self.lbs.get(spec.id)
            if lb is not None and spec.load_balancer_ip and spec.load_balancer_ip != lb.address:
                # A new address asked for: checked before the old one is given up.
                candidates, _, where = await self._candidates(spec)
                choose_address(candidates, self._taken(spec.id), asked=spec.load_balancer_ip, recorded=None,
                               where=where)
                await self._close(self.lbs.pop(spec.id))
                lb = None
            if lb is None:
                addr, ns = await self._allocate(spec, address)
                net, gateway = await self._backend_net(spec)
                lb = self.lbs[spec.id] = _LB(spec, addr, ns, net, gateway)
                lb.health_task = asyncio.create_task(self._check_health(lb), name=f"lb-health-{spec.id}")
            lb.spec = spec
            await self._sync_listeners(lb)
        return self._state(lb)

    async def _sync_listeners(self, lb: _LB) -> None:
        wanted = set(lb.spec.listeners)
        for lst in [k for k in lb.listeners if k not in wanted]:
            await lb.listeners.pop(lst).close()
            lb.backends.pop(lst, None)
        # The proxy runs on the host, outside the tenants' isolation: it must only ever
        # connect to the tenant's own pods, whatever endpoints the tenant writes; or, for
        # the `kubernetes` Service, to the one API server the operator found for the VPC.
        allowed = [ip for ip in lb.spec.backends
                   if lb.backend_net is not None and _within(ip, lb.backend_net) and ip != lb.gateway]
        lb.refused = [] if lb.spec.api_server else sorted(set(lb.spec.backends) - set(allowed))
        if lb.refused:
            log.warning("LB %s: refusing backends outside its VPC: %s", lb.spec.id, ", ".join(lb.refused))
        for lst in lb.spec.listeners:
            targets = [lb.spec.api_server] if lb.spec.api_server else lb.spec.targets(lst, allowed)
            if lst in lb.listeners:
                lb.backends[lst].replace(targets)
                lb.backends[lst].set_affinity(lb.spec.affinity_seconds)
                continue
            kind = socket.SOCK_DGRAM if lst.protocol == "UDP" else socket.SOCK_STREAM
            try:
                sock = netns.bind_in(lb.netns, lb.address, lst.port, kind)
            except OSError as exc:
                raise ProviderError(f"binding {lst.protocol} {lb.address}:{lst.port}: {exc.strerror}",
                                    reason="ListenFailed") from exc
            backends = BackendSet()
            backends.replace(targets)
            backends.set_affinity(lb.spec.affinity_seconds)
            listener = Listener(lst.protocol, sock, backends)
            await listener.start()
            lb.listeners[lst], lb.backends[lst] = listener, backends

    async def _check_health(self, lb: _LB) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            changed = False
            for lst, backends in list(lb.backends.items()):
                lb.listeners[lst].housekeeping()
                if lst.protocol != "TCP":
                    continue
                targets = list(backends.targets)
                results = await asyncio.gather(*(check_tcp(t) for t in targets))
                for t, ok in zip(targets, results):
                    was = t not in backends.unhealthy
                    if ok:
                        backends.unhealthy.discard(t)
                    else:
                        backends.unhealthy.add(t)
                    changed |= was != ok
            if changed and self.on_health_change:
                self.on_health_change(lb.spec.id)

    def _state(self, lb: _LB) -> LBState:
        backends = []
        for lst, bs in lb.backends.items():
            backends += [BackendHealth(ip, port, (ip, port) not in bs.unhealthy) for ip, port in bs.targets]
            backends += [BackendHealth(ip, lst.target_port, False, "outside the load balancer's VPC")
                         for ip in lb.refused]
        return LBState(lb.address, [(lst, lb.backends[lst].healthy_count()) for lst in lb.spec.listeners
                                    if lst in lb.backends], backends)

    def state(self, lb_id: str) -> LBState | None:
        lb = self.lbs.get(lb_id)
        return self._state(lb) if lb else None

    async def _close(self, lb: _LB) -> None:
        if lb.health_task:
            lb.health_task.cancel()
        for listener in lb.listeners.values():
            await listener.close()
        if lb.netns and os.path.exists(lb.netns):
            await netns.ip(lb.netns, "addr", "del", f"{lb.address}/32", "dev", "eth0")
        self.reserved.pop(lb.address, None)

    async def delete(self, lb_id: str, address: str | None = None, vpc_id: str | None = None) -> None:
        async with self._lock:
            lb = self.lbs.pop(lb_id, None)
            if lb is not None:
                await self._close(lb)
                return
            # Deleted before this run resumed it: nothing in memory, but the address its
            # status records may still sit in its VPC.
            for addr, owner in list(self.reserved.items()):
                if owner == lb_id:
                    self.reserved.pop(addr)
            if address and vpc_id and self.reserved.get(address) is None:
                vpc = await self.vpcs.find(vpc_id)  # find, never create: the VPC may be gone too
                if vpc is not None and _within(address, vpc.layout.service_range):
                    await netns.ip(vpc.netns, "addr", "del", f"{address}/32", "dev", "eth0")

