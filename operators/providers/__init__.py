"""Providers run sandboxes, load balancers and private zones. `local` (podman + runc on
this host, proxies and a DNS server in the tenants' VPCs) is the embedded default.

A sandbox provider has two sides, made apart for the two processes that use them: the
lifecycle side (`make_provider`, the SandboxPod operator: create, inspect, delete,
volumes, networks, and the kubelet duties where instances lack them) and the streaming
side (`make_streams`, the virtual node's kubelet API and `sk8s sandbox-logs`: logs,
exec, attach, port-forward)."""
from __future__ import annotations

from ..config import (aliyun_settings, home_id, layout, metapod_lb_settings, metapod_settings, pod_subnet,
                      write_containers_conf)
from .errors import ProviderError
from .lifecycle import SandboxLifecycle
from .sandbox import EventSink
from .services import LoadBalancers, PrivateZones
from .streaming import SandboxStreams


def available_providers() -> list[str]:
    """Providers SandboxPods and tenant clusters may name: `aliyun` (ECI sandboxes, VPC,
    VSwitches and a security group per tenant, SLB, PrivateZone) once an account is
    configured (config.aliyun_settings); `metapod` (each sandbox a Pod of the meta-cluster,
    on its nodes) where it is offered (config.metapod_settings)."""
    return (["local"] + (["aliyun"] if aliyun_settings()["credentials"] else [])
            + (["metapod"] if metapod_settings()["enabled"] else []))


def _metapod_placement():
    from .metapod.podbuild import MetaPlacement
    settings = metapod_settings()
    return MetaPlacement(home_id(layout().home), settings["runtime_class"], settings["name_servers"],
                         settings["private_cidrs"], settings["pod_cidrs"], settings["plane_namespace"])


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
        from .aliyun.factory import make_placement, make_router
        from .aliyun.provider import AliyunProvider
        from .aliyun.routed import RoutedLifecycle
        settings = aliyun_settings()
        placement = make_placement(settings, home_id(layout().home))
        return RoutedLifecycle(make_router(settings, lambda client: AliyunProvider(client, placement)))
    if name == "metapod":  # the meta kubelets run restarts and probes; their events are relayed to `events`
        from .metapod.provider import MetaPodProvider
        return MetaPodProvider(_metapod_placement(), events=events)
    raise ValueError(f"unknown provider {name!r}")


def make_streams(name: str = "local", *, meta_kubeconfig: str | None = None) -> SandboxStreams:
    """The streaming side, without the lifecycle side's networks, VPCs and kubelets.
    `meta_kubeconfig`: the meta-cluster credentials of a process that has its own (the
    virtual node's), for the providers that stream through the meta apiserver."""
    if name == "local":
        from .local.streams import LocalStreams
        return LocalStreams(containers_conf=str(write_containers_conf(layout())))
    if name == "aliyun":
        from .aliyun.factory import make_router
        from .aliyun.routed import RoutedStreams
        from .aliyun.streams import AliyunStreams
        hid = home_id(layout().home)
        return RoutedStreams(make_router(aliyun_settings(), lambda client: AliyunStreams(client, hid)))
    if name == "metapod":
        from .metapod.streams import MetaPodStreams
        if meta_kubeconfig is None:
            return MetaPodStreams()
        from ..kubeclient.client import KubeClient
        meta = KubeClient.from_kubeconfig(meta_kubeconfig, "meta", "sk8s-virtual-node")
        return MetaPodStreams(lambda: meta)
    raise ValueError(f"unknown provider {name!r}")


def make_vpc_finder(name: str = "local", *, meta_kubeconfig: str | None = None, meta_namespace: str = ""):
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
    if name == "metapod" and meta_kubeconfig:  # no VPC: the addresses of its own sandbox Pods
        from ..kubeclient.client import KubeClient
        from .metapod.egress import make_finder
        meta = KubeClient.from_kubeconfig(meta_kubeconfig, "meta", "sk8s-virtual-node")
        return make_finder(lambda: meta, meta_namespace)
    raise ValueError(f"unknown provider {name!r}")


def make_load_balancers(name: str = "local") -> LoadBalancers:
    if name == "local":
        from .local.loadbalancer import LocalLoadBalancers
        vpcs = _local_vpcs()
        return LocalLoadBalancers(vpcs, vpcs.home_id)
    if name == "aliyun":
        from .aliyun.factory import make_router
        from .aliyun.routed import RoutedLoadBalancers
        from .aliyun.slb import AliyunLoadBalancers
        hid = home_id(layout().home)
        return RoutedLoadBalancers(make_router(aliyun_settings(), lambda client: AliyunLoadBalancers(client, hid)))
    if name == "metapod":  # a meta Service of type LoadBalancer per ServiceLB (metapod/loadbalancer.py)
        from ..models.contracts import METAPOD_LB_CLASS
        from .metapod.loadbalancer import MetaPodLoadBalancers
        settings = metapod_lb_settings(METAPOD_LB_CLASS)
        return MetaPodLoadBalancers(home_id(layout().home), settings["addresses"], settings["class"])
    raise ValueError(f"unknown provider {name!r}")


def make_private_zones(name: str = "local") -> PrivateZones:
    if name == "local":
        from .local.privatezone import LocalPrivateZones
        return LocalPrivateZones(_local_vpcs())
    if name == "aliyun":
        from .aliyun.factory import make_router
        from .aliyun.pvtz import AliyunPrivateZones
        from .aliyun.routed import RoutedPrivateZones
        hid = home_id(layout().home)
        return RoutedPrivateZones(make_router(aliyun_settings(), lambda client: AliyunPrivateZones(client, hid)))
    raise ValueError(f"unknown provider {name!r}")


def bind_account(name: str, cluster_uid: str, namespace: str, data: dict[str, str]) -> bool:
    """Record a cluster's own cloud account (its Secret's decoded `data`) for every process
    calling its provider; whether it changed. Raises ProviderError naming a missing key."""
    if name != "aliyun":
        raise ProviderError(f"the {name} provider takes no cloud account", reason="NotSupported", retryable=False)
    from .aliyun.client import Credentials
    from .aliyun.factory import account_store
    missing = [k for k in ("access-key-id", "access-key-secret") if not (data.get(k) or "").strip()]
    if missing:
        raise ProviderError(f"the Secret has no {' or '.join(missing)}", reason="MissingCredentials", retryable=False)
    creds = Credentials(data["access-key-id"].strip(), data["access-key-secret"].strip())
    return account_store().write(cluster_uid, namespace, creds)


def forget_account(name: str, cluster_uid: str) -> None:
    """After the cluster's cloud resources are gone. Idempotent."""
    if name == "aliyun":
        from .aliyun.factory import account_store
        account_store().remove(cluster_uid)


def bound_accounts(name: str) -> list[str]:
    """The clusters (uids) with an account of their own."""
    if name != "aliyun":
        return []
    from .aliyun.factory import account_store
    return [a.cluster_uid for a in account_store().accounts()]
