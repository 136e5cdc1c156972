"""The tenant apiserver's egress targets on a real meta-cluster: its sandbox Pods' addresses.

A metapod tenant has no VPC range of its own: its pods are Pods of the meta-cluster, with
addresses from the meta-cluster's pod network, which every other tenant's Pods share. So
the egress proxy (virtualnode/egress/) may dial exactly the addresses its own sandbox Pods
hold now, each a /32, read from the meta apiserver (the virtual node's Role lists Pods of
its own sandbox namespace only), and asked again after `TTL` seconds: a webhook Pod that
just started is reachable within that, one that went away is soon forgotten.
"""
from __future__ import annotations

import ipaddress
from typing import Callable

from ...kubeclient.client import KubeClient
from ...models.contracts import LABEL_CLUSTER_UID

TTL = 2.0


def pod_networks(pods: list[dict]) -> tuple[ipaddress.IPv4Network, ...]:
    """Each running Pod's IPv4 addresses, as /32 networks (pure)."""
    found: set[ipaddress.IPv4Network] = set()
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") not in ("Pending", "Running"):
            continue
        for entry in status.get("podIPs") or [{"ip": status.get("podIP")}]:
            try:
                ip = ipaddress.ip_address((entry or {}).get("ip") or "")
            except ValueError:
                continue
            if ip.version == 4:
                found.add(ipaddress.IPv4Network(f"{ip}/32"))
    return tuple(sorted(found))


def make_finder(client: Callable[[], KubeClient], namespace: str):
    """`find(cluster_uid)`: the cluster's sandbox Pods' addresses, () while it has none."""
    async def find(cluster_uid: str):
        items, _ = await client().list_all(f"/api/v1/namespaces/{namespace}/pods",
                                           {"labelSelector": f"{LABEL_CLUSTER_UID}={cluster_uid}"})
        return pod_networks(items)
    find.ttl = TTL
    return find
