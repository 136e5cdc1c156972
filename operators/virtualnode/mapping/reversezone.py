"""Reverse DNS of a tenant's Services, and pod A records, as kube-dns/CoreDNS answer them (pure functions).

A second PrivateZone, `in-addr.arpa`, bound to the tenant's VPC beside `cluster.local`
(PrivateZone keeps reverse zones apart, as Alibaba Cloud's does):

- each Service ClusterIP -> `<svc>.<ns>.svc.cluster.local`;
- each endpoint of a headless Service with a hostname -> `<hostname>.<svc>.<ns>.svc.cluster.local`.

An address with no record answers NXDOMAIN (there is no upstream to ask).

Pod A records (`pod_records`) go into `cluster.local`: `a-b-c-d.<ns>.pod` for every pod with
an IP that has not finished, as CoreDNS's `pods verified` answers them.
"""
from __future__ import annotations

import ipaddress

from ...models.contracts import CLUSTER_DOMAIN, LABEL_CLUSTER, LABEL_CLUSTER_UID
from ... import API_VERSION
from .services import is_headless, ready_endpoints, svc_key
from .spec import label_value

REVERSE_ZONE = "in-addr.arpa"
REVERSE_ZONE_OBJECT = REVERSE_ZONE  # the PrivateZone's name, beside `cluster.local`
TTL = 5


def reverse_rr(ip: str) -> str | None:
    """`4.3.2.10` for 10.2.3.4: the name relative to in-addr.arpa; None for other addresses."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version != 4:
        return None
    return ".".join(reversed(str(addr).split(".")))


def _cluster_ips(spec: dict) -> list[str]:
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] not in ips:
        ips.insert(0, spec["clusterIP"])
    return [ip for ip in ips if ip and ip != "None"]


def ptr_records(services: list[dict], slices_of) -> list[dict]:
    """The reverse zone's record sets; `slices_of(ns, name)` gives a Service's EndpointSlices."""
    names: dict[str, set[str]] = {}
    for svc in services:
        ns, name = svc_key(svc)
        spec = svc.get("spec") or {}
        fqdn = f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"
        if spec.get("type") == "ExternalName":
            continue
        if is_headless(svc):
            eps = ready_endpoints(slices_of(ns, name), include_not_ready=bool(spec.get("publishNotReadyAddresses")))
            for e in eps:
                rr = reverse_rr(e["ip"])
                if rr and e.get("hostname"):
                    names.setdefault(rr, set()).add(f"{e['hostname']}.{fqdn}")
            continue
        for ip in _cluster_ips(spec):
            rr = reverse_rr(ip)
            if rr:
                names.setdefault(rr, set()).add(fqdn)
    return [{"rr": rr, "type": "PTR", "values": sorted(names[rr]), "ttl": TTL} for rr in sorted(names)]


def pod_records(pods: list[dict]) -> list[dict]:
    """`10-112-0-5.<ns>.pod` -> 10.112.0.5 for each running (or starting) pod with an IPv4 address."""
    out: dict[str, set[str]] = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP") or ""
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or reverse_rr(ip) is None:
            continue
        out.setdefault(f"{ip.replace('.', '-')}.{pod['metadata']['namespace']}.pod", set()).add(ip)
    return [{"rr": rr, "type": "A", "values": sorted(out[rr]), "ttl": TTL} for rr in sorted(out)]


def build_reverse_zone(*, cluster: str, cluster_uid: str, namespace: str, zone_records: list[dict]) -> dict:
    return {
        "apiVersion": API_VERSION, "kind": "PrivateZone",
        "metadata": {"name": REVERSE_ZONE_OBJECT, "namespace": namespace,
                     "labels": {LABEL_CLUSTER: label_value(cluster), LABEL_CLUSTER_UID: label_value(cluster_uid)}},
        "spec": {"zoneName": REVERSE_ZONE, "clusterRef": {"name": cluster}, "vpcIDs": [cluster_uid],
                 "records": zone_records},
    }
