"""Providers run sandboxes, load balancers and private zones. `local` (podman + runc on
this host, proxies and a DNS server in the tenants' VPCs) is the embedded default.

A sandbox provider has two sides, made apart for the two processes that use them: the
lifecycle side (`make_provider`, the SandboxPod operator: create, inspect, delete,
volumes, networks, and the kubelet duties where instances lack them) and the streaming
side (`make_streams`, the virtual node's kubelet API and `sk8s sandbox-logs`: logs,
exec, attach, port-forward)."""
from __future__ import annotations

from ..config import aliyun_settings, home_id, layout, pod_subnet, write_containers_conf
from .lifecycle import SandboxLifecycle
from .sandbox import EventSink
from .services import LoadBalancers, PrivateZones
from .streaming import SandboxStreams


def available_providers() -> list[str]:
    """Providers SandboxPods and tenant clusters may name: `aliyun` (ECI sandboxes, VPC,
    VSwitches and a security group per tenant, SLB, PrivateZone) once an account is
    configured (config.aliyun_settings)."""
    return ["local"] + (["aliyun"] if aliyun_settings()["credentials"] else [])


def _local_vpcs():
    from .local.podman import Podman
    from .local.vpc import LocalVpcs
    lay = layout()
    return LocalVpcs(Podman(str(write_containers_conf(lay))), home_id(lay.home))


def make_provider(name: str = "local", *, events: EventSink | None = None) -> SandboxLifecycle:
    """The lifecycle side; `events` receives the events of its kubelet part, if it has one."""
    if name == "local":
        from .local.provider import LocalProvider
        lay = layout()
        return LocalProvider(home_id=home_id(lay.home), containers_conf=str(write_containers_conf(lay)),
                             subnet=pod_subnet(), state_dir=lay.run / "kubelet", events=events)
    if name == "aliyun":  # ECI runs its containers' restarts and probes itself: no event sink
        from .aliyun.factory import make_client, make_placement
        from .aliyun.provider import AliyunProvider
        settings = aliyun_settings()
        return AliyunProvider(make_client(settings), make_placement(settings, home_id(layout().home)))
    raise ValueError(f"unknown provider {name!r}")


def make_streams(name: str = "local") -> SandboxStreams:
    """The streaming side, without the lifecycle side's networks, VPCs and kubelets."""
    if name == "local":
        from .local.streams import LocalStreams
        return LocalStreams(containers_conf=str(write_containers_conf(layout())))
    if name == "aliyun":
        from .aliyun.factory import make_client
        from .aliyun.streams import AliyunStreams
        return AliyunStreams(make_client(aliyun_settings()), home_id(layout().home))
    raise ValueError(f"unknown provider {name!r}")


def make_vpc_finder(name: str = "local"):
    """`find(vpc_id)`: a VPC's subnet and this host's gateway on it, None while it has none,
    never making one (the tenant apiserver's egress proxy allows that subnet). A cloud VPC
    is reachable from this host only where the host is attached to it: the emulated cloud's
    VPCs are networks of this host's data plane (same keys); a real one would need peering."""
    if name in ("local", "aliyun"):
        vpcs = _local_vpcs()

        async def find(vpc_id: str):
            vpc = await vpcs.find(vpc_id)
            return (vpc.layout.subnet, vpc.gateway) if vpc else None
        return find
    raise ValueError(f"unknown provider {name!r}")


def make_load_balancers(name: str = "local") -> LoadBalancers:
    if name == "local":
        from .local.loadbalancer import LocalLoadBalancers
        vpcs = _local_vpcs()
        return LocalLoadBalancers(vpcs, vpcs.home_id)
    if name == "aliyun":
        from .aliyun.factory import make_client
        from .aliyun.slb import AliyunLoadBalancers
        return AliyunLoadBalancers(make_client(aliyun_settings()), home_id(layout().home))
    raise ValueError(f"unknown provider {name!r}")


def make_private_zones(name: str = "local") -> PrivateZones:
    if name == "local":
        from .local.privatezone import LocalPrivateZones
        return LocalPrivateZones(_local_vpcs())
    if name == "aliyun":
        from .aliyun.factory import make_client
        from .aliyun.pvtz import AliyunPrivateZones
        return AliyunPrivateZones(make_client(aliyun_settings()), home_id(layout().home))
    raise ValueError(f"unknown provider {name!r}")
