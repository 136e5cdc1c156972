"""Providers run sandboxes, load balancers and private zones. `local` (podman + runc on
this host, proxies and a DNS server in the tenants' VPCs) is the embedded default."""
from __future__ import annotations

from ..config import home_id, layout, pod_subnet, write_containers_conf
from .base import Provider
from .services import LoadBalancers, PrivateZones


def available_providers() -> list[str]:
    return ["local"]


def _local_vpcs():
    from .local.podman import Podman
    from .local.vpc import LocalVpcs
    lay = layout()
    return LocalVpcs(Podman(str(write_containers_conf(lay))), home_id(lay.home))


def make_provider(name: str = "local") -> Provider:
    if name == "local":
        from .local import LocalProvider
        lay = layout()
        return LocalProvider(home_id=home_id(lay.home), containers_conf=str(write_containers_conf(lay)),
                             subnet=pod_subnet(), state_dir=lay.run / "kubelet")
    raise ValueError(f"unknown provider {name!r}")


def make_load_balancers(name: str = "local") -> LoadBalancers:
    if name == "local":
        from .local.loadbalancer import LocalLoadBalancers
        vpcs = _local_vpcs()
        return LocalLoadBalancers(vpcs, vpcs.home_id)
    raise ValueError(f"unknown provider {name!r}")


def make_private_zones(name: str = "local") -> PrivateZones:
    if name == "local":
        from .local.privatezone import LocalPrivateZones
        return LocalPrivateZones(_local_vpcs())
    raise ValueError(f"unknown provider {name!r}")
