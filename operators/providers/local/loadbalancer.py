"""Local load balancers, each on an address of its own, forwarding in the kernel.

The data path is nftables DNAT (lbrules.py, as kube-proxy's nftables mode): round robin
over the healthy backends of each listener, session affinity in timed sets, one table per
LB, replaced in one transaction whenever the backends or their health change (TCP connect
checks every second; UDP backends follow the endpoints). Rules live in the kernel, so an
LB keeps serving while its operator restarts; the tables of LBs nobody records any more (an
operator killed before it removed them) are dropped at the next start, as orphaned
addresses are.

The Python proxy (proxy.py) remains for what the kernel path cannot serve: the tenant's
`kubernetes` LB, whose backend is the tenant's API server on this host (the VPC's own
packets may not open connections to the host, firewall.py; the proxy connects from the
host), and any LB when nft is unusable or SK8S_LB_DATAPATH=proxy.

Internet LBs take an address from a loopback range (127.x.y.z, reachable from this host
as a public address would be from anywhere); intranet LBs take one from their VPC's
service range, bound inside the VPC's anchor namespace so that only that tenant's pods
(and the host) reach it. Addresses are recorded in each ServiceLB's status; at start-up
the operator hands them back through `setup`, so a restart keeps every address and an
address added by a run that died before recording it is freed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
import os
import shutil
import socket

from ...config import lb_datapath, lb_range
from ...models.contracts import LABEL_HOME, LABEL_VPC
from ..errors import ProviderError
from ..services import BackendHealth, LBListener, LBSpec, LBState, LoadBalancers
from . import lbrules, netns, nft
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


def _older(spec: LBSpec, than: LBSpec) -> bool:
    return spec.version is not None and than.version is not None and spec.version < than.version


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
        # The kernel path: its nft table (None: the proxy serves), the ruleset last applied,
        # and what each listener forwarded to then (UDP flows to a target dropped are ended).
        self.table: str | None = None
        self.applied: str | None = None
        self.served: dict[LBListener, tuple[tuple[str, int], ...]] = {}
        # Rule changes of this LB, one at a time; the provider's lock is for what LBs share
        # (addresses), so that one LB's change never waits for another's.
        self.lock = asyncio.Lock()
        self.closed = False


class LocalLoadBalancers(LoadBalancers):
    name = "local"

    def __init__(self, vpcs: LocalVpcs, home_id: str) -> None:
        self.vpcs = vpcs
        self.internet = internet_range(home_id)
        self.lbs: dict[str, _LB] = {}
        self.reserved: dict[str, str] = {}  # address -> lb id
        self._lock = asyncio.Lock()
        self._kernel: bool | None = None

    @property
    def table_prefix(self) -> str:
        """This instance's nft tables: per installation, and per internet range (the cloud
        emulator serves its SLBs with an instance of its own, whose tables are not ours)."""
        owner = hashlib.sha256(str(self.internet).encode()).hexdigest()[:6]
        return f"sk8s-lb-{self.vpcs.home_id}-{owner}-"

    async def kernel_path(self) -> bool:
        """Whether nft serves here (checked once)."""
        if self._kernel is None:
            ok = lb_datapath() != "proxy" and shutil.which("nft") is not None
            if ok:
                rc, out = await nft.apply(nft.guard_script())
                ok = rc == 0
                if not ok:
                    log.warning("nft unusable, load balancers forward in user space: %s", out)
            self._kernel = ok
        return self._kernel

    async def setup(self, known: dict[str, str]) -> None:
        self.reserved = {addr: lb_id for lb_id, addr in known.items() if addr}
        await self._drop_stale_tables(None, set(known))
        await self._free_orphan_addresses(set(known))

    async def _drop_stale_tables(self, ns: str | None, known: set[str]) -> None:
        """Tables of LBs that no ServiceLB records: their operator died before removing them."""
        stale = [t for t in await nft.tables(self.table_prefix, ns) if t[len(self.table_prefix):] not in known]
        if stale:
            log.warning("removing stale load balancer rules: %s", ", ".join(stale))
            await nft.drop_tables(stale, ns)

    async def _free_orphan_addresses(self, known: set[str]) -> None:
        """Intranet addresses in VPC anchors that no ServiceLB records (a run killed mid-way),
        and the rules of LBs no ServiceLB records."""
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
            await self._drop_stale_tables(vpc.netns, known)
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
                if spec.api_server is None and await self.kernel_path():
                    lb.table = lbrules.table_name(self.table_prefix, spec.id)
                    await self._open_kernel_path(lb)
                lb.health_task = asyncio.create_task(self._check_health(lb), name=f"lb-health-{spec.id}")
            async with lb.lock:
                if _older(spec, lb.spec):  # the watch brought newer backends already: kept
                    spec = dataclasses.replace(spec, backends=lb.spec.backends,
                                               backend_ports=lb.spec.backend_ports, version=lb.spec.version)
                lb.spec = spec
                if lb.table:
                    await self._sync_rules(lb)
                else:
                    await self._sync_listeners(lb)
        return self._state(lb)

    async def follow(self, spec: LBSpec) -> bool:
        lb = self.lbs.get(spec.id)
        if lb is None:
            return False
        async with lb.lock:
            if lb.closed or not lb.table or dataclasses.replace(
                    spec, backends=lb.spec.backends, backend_ports=lb.spec.backend_ports,
                    version=lb.spec.version) != lb.spec:
                return False
            if _older(spec, lb.spec):
                return True
            changed = (spec.backends, spec.backend_ports) != (lb.spec.backends, lb.spec.backend_ports)
            lb.spec = spec
            if changed:
                await self._sync_rules(lb)
            return True

    async def _open_kernel_path(self, lb: _LB) -> None:
        """The settings the kernel path needs for this LB; where they cannot be made, the
        proxy serves it."""
        try:
            if lb.netns:
                await nft.open_anchor(lb.netns)
            elif lb.gateway:
                await nft.open_localnet(lb.gateway)
        except (RuntimeError, OSError) as exc:
            log.warning("LB %s forwards in user space: %s", lb.spec.id, exc)
            lb.table = None

    def _allowed(self, lb: _LB) -> list[str]:
        # The data path runs on the host, outside the tenants' isolation: it must only ever
        # reach the tenant's own pods, whatever endpoints the tenant writes; or, for the
        # `kubernetes` Service, the one API server the operator found for the VPC.
        allowed = [ip for ip in lb.spec.backends
                   if lb.backend_net is not None and _within(ip, lb.backend_net) and ip != lb.gateway]
        lb.refused = [] if lb.spec.api_server else sorted(set(lb.spec.backends) - set(allowed))
        if lb.refused:
            log.warning("LB %s: refusing backends outside its VPC: %s", lb.spec.id, ", ".join(lb.refused))
        return allowed

    async def _sync_rules(self, lb: _LB) -> None:
        """The kernel path: backend sets as the proxy keeps them, then the table."""
        allowed = self._allowed(lb)
        for lst in [k for k in lb.backends if k not in set(lb.spec.listeners)]:
            lb.backends.pop(lst)
        for lst in lb.spec.listeners:
            backends = lb.backends.setdefault(lst, BackendSet())
            backends.replace(lb.spec.targets(lst, allowed))
            backends.set_affinity(lb.spec.affinity_seconds)
        await self._apply(lb)

    async def _apply(self, lb: _LB) -> None:
        """Writes the table if what it should say changed: each listener forwards to its
        healthy backends, or, none being healthy, to all of them (the proxy's last resort)."""
        routes = {}
        for lst, backends in lb.backends.items():
            healthy = tuple(t for t in backends.targets if t not in backends.unhealthy)
            routes[lst] = healthy or tuple(backends.targets)
        try:
            text = lbrules.ruleset(lb.table, lb.address, "prerouting" if lb.netns else "output",
                                   [lbrules.Route(lst.protocol, lst.port, t) for lst, t in routes.items()],
                                   lb.spec.affinity_seconds)
        except ValueError as exc:  # validated before: a value that still fails is refused whole
            raise ProviderError(f"load balancer {lb.address}: {exc}", reason="InvalidSpec") from exc
        if text != lb.applied:
            rc, out = await nft.apply(text, lb.netns)
            if rc != 0:
                raise ProviderError(f"load balancer {lb.address}: nft: {out}", reason="ListenFailed")
            lb.applied = text
            log.info("LB %s %s: %s", lb.spec.id, lb.address, "; ".join(
                f"{lst.protocol} {lst.port} -> {' '.join(f'{ip}:{p}' for ip, p in t) or 'none'}" for lst, t in routes.items()))
        for lst, targets in routes.items():
            if lst.protocol == "UDP":
                for ip, _ in set(lb.served.get(lst, ())) - set(targets):
                    await nft.forget_udp(lb.netns, lb.address, lst.port, ip)
        lb.served = routes

    async def _sync_listeners(self, lb: _LB) -> None:
        wanted = set(lb.spec.listeners)
        for lst in [k for k in lb.listeners if k not in wanted]:
            await lb.listeners.pop(lst).close()
            lb.backends.pop(lst, None)
        allowed = self._allowed(lb)
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
                if lst in lb.listeners:
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
            if changed and lb.table:
                async with lb.lock:
                    if not lb.closed:
                        try:
                            await self._apply(lb)
                        except ProviderError as exc:
                            log.warning("LB %s: %s", lb.spec.id, exc)
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
        # Under the LB's lock: a rule change under way (the health task's, the watch's) ends
        # first, since its thread would finish writing the table even if cancelled.
        async with lb.lock:
            lb.closed = True
            if lb.health_task:
                lb.health_task.cancel()
            for listener in lb.listeners.values():
                await listener.close()
            if lb.table and (lb.netns is None or os.path.exists(lb.netns)):
                await nft.drop_tables([lb.table], lb.netns)
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
            # Its rules too, wherever they are (the host's, or its VPC anchor's).
            table = lbrules.table_name(self.table_prefix, lb_id)
            await nft.drop_tables([table])
            vpc = await self.vpcs.find(vpc_id) if vpc_id else None  # find, never create: the VPC may be gone too
            if vpc is not None:
                await nft.drop_tables([table], vpc.netns)
            if address and vpc is not None and self.reserved.get(address) is None:
                if _within(address, vpc.layout.service_range):
                    await netns.ip(vpc.netns, "addr", "del", f"{address}/32", "dev", "eth0")

