"""The networks of the local provider's sandboxes: the admins' sandbox network (a podman
bridge of this installation) and, for a tenant's sandboxes, its VPC's isolated network
(vpc.py), with the gateway of each (the sandboxes' host IP)."""
from __future__ import annotations

import ipaddress

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME
from ..errors import ProviderError
from .podman import Podman
from .vpc import LocalVpcs


class LocalNetworks:
    def __init__(self, podman: Podman, vpcs: LocalVpcs, *, home_id: str, network: str, subnet: str | None):
        self.podman = podman
        self.vpcs = vpcs
        self.home_id = home_id
        self.network = network
        self.subnet = subnet
        self._admin_net: ipaddress.IPv4Network | None = None  # the admin network's subnet, once read
        self._gateways: dict[str, str | None] = {}

    async def setup(self) -> str | None:
        """The admins' sandbox network, made if missing; its gateway."""
        host_ip = await self._ensure_network(self.network, subnet=self.subnet, isolate=False)
        # Tenant VPCs must not reach the admins' sandboxes on this network (firewall.py).
        net = await self.podman.json("network", "inspect", "--", self.network)
        subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
        self.vpcs.protected = tuple(s["subnet"] for s in subnets if s.get("subnet"))
        return host_ip

    def cluster_network(self, cluster_uid: str) -> str:
        return self.vpcs.network_name(cluster_uid)

    async def _ensure_network(self, name: str, *, subnet: str | None = None, isolate: bool = False,
                              labels: dict[str, str] | None = None) -> str | None:
        """Create a bridge network if missing; return its gateway (the sandboxes' host IP)."""
        if name in self._gateways:
            return self._gateways[name]
        res = await self.podman.run("network", "exists", name, check=False)
        if res.rc != 0:
            # Without an explicit subnet podman takes a free one from its pool, so several
            # installations and tenants never collide.
            args = [f"--subnet={subnet}"] if subnet else []
            if isolate:
                # Tenant networks drop traffic from every other isolated network.
                args.append("--opt=isolate=true")
            args += [f"--label={k}={v}" for k, v in {LABEL_HOME: self.home_id, **(labels or {})}.items()]
            created = await self.podman.run("network", "create", *args, name, check=False)
            if created.rc != 0 and "already exists" not in created.err:
                raise ProviderError(f"creating network {name}: {created.err.strip()}")
        net = await self.podman.json("network", "inspect", name)
        subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
        self._gateways[name] = subnets[0].get("gateway") if subnets else None
        return self._gateways[name]

    async def network_for(self, labels: dict[str, str]) -> tuple[str, str | None]:
        """The sandbox's network and, in a tenant VPC, the VPC resolver."""
        cluster_uid = labels.get(LABEL_CLUSTER_UID)
        if not cluster_uid:
            return self.network, None
        vpc = await self.vpcs.ensure(cluster_uid)
        self._gateways[vpc.network] = vpc.gateway
        return vpc.network, vpc.layout.resolver

    async def release_cluster(self, cluster_uid: str) -> None:
        self._gateways.pop(self.cluster_network(cluster_uid), None)
        await self.vpcs.release(cluster_uid)

    async def admin_subnet(self) -> ipaddress.IPv4Network | None:
        """The admin sandbox network's subnet (podman chose it)."""
        if self._admin_net is None:
            net = await self.podman.json("network", "inspect", "--", self.network)
            subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
            self._admin_net = ipaddress.ip_network(subnets[0]["subnet"]) if subnets else None
        return self._admin_net
