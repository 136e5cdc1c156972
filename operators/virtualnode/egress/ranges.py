"""The egress proxy's view of the tenant's VPC, asked of the provider and kept briefly.

The VPC of a cluster is made with its first pod or load balancer and lives as long as the
cluster, with the same subnet: a found one is trusted for a while, a missing one is asked
for again soon (until it exists, only the kubelet is reachable: there is nothing else).
"""
from __future__ import annotations

import ipaddress
import time
from typing import Awaitable, Callable

from .policy import EgressPolicy

# A VPC (its subnet, this host's gateway on it), or the addresses of its sandboxes (metapod).
VpcFinder = Callable[[str], Awaitable[tuple[ipaddress.IPv4Network, str] | tuple[ipaddress.IPv4Network, ...] | None]]
FOUND_TTL = 60.0
MISSING_TTL = 2.0


class VpcPolicy:
    def __init__(self, find: VpcFinder, cluster_uid: str, kubelet: tuple[str, int],
                 clock: Callable[[], float] = time.monotonic):
        self.find = find
        self.cluster_uid = cluster_uid
        self.kubelet = kubelet
        self.clock = clock
        self._policy = EgressPolicy(kubelet)
        self._until = 0.0

    async def __call__(self) -> EgressPolicy:
        if self.clock() >= self._until:
            found = await self.find(self.cluster_uid)
            if isinstance(found, tuple) and all(isinstance(n, ipaddress.IPv4Network) for n in found):
                # Addresses rather than a VPC (metapod: its sandbox Pods'), which change often.
                self._policy = EgressPolicy(self.kubelet, found)
                self._until = self.clock() + getattr(self.find, "ttl", MISSING_TTL)
                return self._policy
            subnet, gateway = found if found else (None, "")
            self._policy = EgressPolicy.for_vpc(self.kubelet, subnet, gateway)
            self._until = self.clock() + (FOUND_TTL if found else MISSING_TTL)
        return self._policy
