"""What serves an emulated SLB: the narrow protocol the SLB API drives, an in-memory backend
(tests) and one on the local data plane (the local provider's load balancers: a real
TCP/UDP proxy per SLB, on an address of the tenant's VPC for an intranet SLB, of a loopback
range for an internet one).

The API calls `serve` after every change of an SLB (created, a listener started, stopped
or deleted, backends changed): the backend makes the data plane match the record, its
running listeners forwarding to its backend servers of non-zero weight, each listener to
its BackendServerPort (the default server group's rule), and answers the address it
serves on (for an internet SLB, one it allocates)."""
from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

from ...providers.errors import ProviderError
from ...providers.services import LBListener, LBSpec, LoadBalancers
from .errors import ApiError
from .slb_records import LbRecord

log = logging.getLogger(__name__)
MEMORY_INTERNET = ipaddress.ip_network("198.51.100.0/24")  # TEST-NET-2: never a real host's


class LbBackend(Protocol):
    async def serve(self, lb: LbRecord) -> str:
        """Make the data plane match `lb`; the address it serves on (lb.address if set).
        An ApiError refuses what this backend cannot serve (the SLB is then not created)."""

    async def delete(self, lb: LbRecord) -> None:
        """Stop serving and free the address; an SLB never served is no error."""

    def health(self, lb: LbRecord) -> dict[tuple[str, int], bool]:
        """(backend ip, port) -> passing its health check now; absent: not checked (yet)."""

    async def close(self) -> None:
        """Stop everything (the emulator stops)."""


class MemoryLbBackend:
    """Serves nothing: internet addresses from TEST-NET-2, every backend healthy unless its
    IP is in `unhealthy` (tests set it)."""

    def __init__(self) -> None:
        self.served: dict[str, LbRecord] = {}
        self.unhealthy: set[str] = set()
        self._next = 0

    async def serve(self, lb: LbRecord) -> str:
        self.served[lb.id] = lb
        if lb.address:
            return lb.address
        self._next += 1
        return str(MEMORY_INTERNET[self._next % 250 + 2])

    async def delete(self, lb: LbRecord) -> None:
        self.served.pop(lb.id, None)

    def health(self, lb: LbRecord) -> dict[tuple[str, int], bool]:
        return {(s.ip, lst.backend_port): s.ip not in self.unhealthy
                for lst in lb.listeners.values() if lst.status == "running" for s in lb.servers.values()}

    async def close(self) -> None:
        pass


def lb_spec(lb: LbRecord) -> LBSpec:
    """The local load balancer's terms for an SLB: its running listeners, its backends of
    non-zero weight, the longest persistence of its TCP listeners as client affinity."""
    running = [lst for lst in lb.listeners.values() if lst.status == "running"]
    listeners = [LBListener(lst.protocol.upper(), lst.port, lst.backend_port)
                 for lst in sorted(running, key=lambda lst: (lst.port, lst.protocol))]
    backends = sorted({s.ip for s in lb.servers.values() if s.weight > 0 and s.ip})
    persistence = max((lst.persistence for lst in running if lst.protocol == "tcp"), default=0)
    return LBSpec(lb.id, lb.address_type, lb.local_key, listeners, backends,
                  load_balancer_ip=(lb.address or None) if lb.address_type == "intranet" else None,
                  affinity_seconds=persistence or None)


class LocalLbBackend:
    """Each SLB is one of the local provider's load balancers (LBSpec id = LoadBalancerId,
    vpc_id = the local key of its VPC: an intranet SLB's own, an internet SLB's backends').
    An SLB whose backends move to another VPC is served anew on the same address."""

    def __init__(self, lbs: LoadBalancers) -> None:
        self.lbs = lbs
        self.keys: dict[str, str | None] = {}  # LB id -> the VPC it is served for

    @classmethod
    def for_home(cls) -> LocalLbBackend:
        """The load balancers of this installation's local provider, with an internet range
        of their own: the installation's local ServiceLB operator hands out its home's."""
        from ...config import home_id, layout
        from ...providers import make_load_balancers
        from ...providers.local.loadbalancer import internet_range
        lbs = make_load_balancers("local")
        own = internet_range(home_id(layout().home))
        ours = internet_range(home_id(layout().home) + ":alibaba-slb")
        if ours == own:  # a fixed SK8S_LB_RANGE, or the same hash: the upper half
            ours = list(own.subnets(prefixlen_diff=1))[1]
        lbs.internet = ours
        return cls(lbs)

    async def serve(self, lb: LbRecord) -> str:
        if lb.id in self.keys and self.keys[lb.id] != lb.local_key:
            await self.lbs.delete(lb.id)
        self.keys[lb.id] = lb.local_key
        try:
            state = await self.lbs.ensure(lb_spec(lb), lb.address or None)
        except ProviderError as e:
            raise ApiError(400, "InvalidParameter", f"The load balancer cannot be served here: {e}") from None
        return state.address

    async def delete(self, lb: LbRecord) -> None:
        self.keys.pop(lb.id, None)
        await self.lbs.delete(lb.id, lb.address or None, lb.local_key)

    def health(self, lb: LbRecord) -> dict[tuple[str, int], bool]:
        state = self.lbs.state(lb.id)
        return {(b.ip, b.port): b.healthy for b in state.backends} if state else {}

    async def close(self) -> None:
        for lb_id in list(self.keys):
            try:
                await self.lbs.delete(lb_id)
            except Exception:  # stopping: the rest still goes
                log.exception("closing load balancer %s", lb_id)
        self.keys.clear()
