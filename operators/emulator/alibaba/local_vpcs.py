"""The emulator's VPCs as real local networks: each VPC is the local provider's VPC network
(providers/local/vpc.py: an isolated podman bridge, its pods' addresses from the lower half
of the range, its resolver and intranet load balancers in the upper half), keyed by the
VPC's local key (vpc.VpcService.local_key: the tenant cluster's uid when the VPC is
tagged with one, so a cluster's VPC is the network its local side already uses)."""
from __future__ import annotations

import ipaddress
from typing import Any

from ...providers.local.vpc import VpcLayout
from .errors import invalid


class LocalVpcBackend:
    """vpc.VpcBackend on the sandboxes' own provider (PodmanBackend's): made with the VPC's
    CidrBlock, removed (and marked released, so nothing late makes it again) on DeleteVpc."""

    def __init__(self, groups: Any):
        self.groups = groups  # a PodmanBackend

    async def ensure(self, key: str, cidr: str) -> None:
        await self.groups.ready()  # the provider set up: its admins' network kept out of every VPC
        await self.groups.provider.ensure_cluster_network(key, cidr)

    async def release(self, key: str) -> None:
        await self.groups.provider.release_cluster(key)


def check_vswitch(local: dict[str, str]) -> None:
    """A group's addresses come from the lower half of its VPC's range (the local network's
    IP range): a VSwitch that does not cover it would show addresses outside itself, so the
    emulator places groups only in such VSwitches (the tenant plan's pod VSwitch is exactly
    that half)."""
    pods = VpcLayout(ipaddress.ip_network(local["CidrBlock"])).pod_range
    if not pods.subnet_of(ipaddress.ip_network(local["VSwitchCidr"])):
        raise invalid("VSwitchId", f"The emulator runs container groups only in a VSwitch covering {pods}, "
                      "the lower half of its VPC, where the local network gives addresses.")
