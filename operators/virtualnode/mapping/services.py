"""Tenant Services -> ServiceLBs and private-zone records (pure functions, no I/O).

There is no kube-proxy and no node: a Service's virtual IP is a load balancer of its
own. Every Service with a selector or endpoints gets an intranet ServiceLB in the
tenant's VPC, which its DNS name resolves to. The tenant's ClusterIP range is its VPC's
service range (`service_cidr`), so the load balancer takes the Service's ClusterIP as its
address; `default/kubernetes` gets one too, in front of the tenant's own apiserver, and
`kube-system/kube-dns` names the VPC resolver (no load balancer). A cluster made before
address plans (no `service_cidr`) keeps picked addresses. A LoadBalancer Service gets an internet
ServiceLB as well (its EXTERNAL-IP), unless the ACK annotation asks for intranet, in
which case the intranet address is the EXTERNAL-IP. Headless Services resolve to their
ready endpoints, ExternalName Services to a CNAME.
"""
from __future__ import annotations

import hashlib
import ipaddress

from ... import API_VERSION
from ...models.contracts import (CLUSTER_DOMAIN, LABEL_CLUSTER, LABEL_CLUSTER_UID, LABEL_SERVICE_NAME,
                                 LABEL_SERVICE_NAMESPACE, LABEL_SERVICE_UID)
from .spec import label_value

# The annotation ACK (Alibaba's managed Kubernetes) reads, so manifests written for it work.
ADDRESS_TYPE_ANNOTATION = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
ZONE_NAME = CLUSTER_DOMAIN
ZONE_OBJECT = CLUSTER_DOMAIN  # the PrivateZone's name: one zone per tenant
MAX_NAME = 253
MAX_LISTENERS = 64  # operators/models/servicelb.py: a load balancer's listeners


def svc_key(svc: dict) -> tuple[str, str]:
    return svc["metadata"]["namespace"], svc["metadata"]["name"]


def servicelb_name(namespace: str, name: str, internet: bool) -> str:
    full = f"{namespace}.{name}" + (".internet" if internet else "")
    if len(full) <= MAX_NAME:
        return full
    return full[:MAX_NAME - 11].rstrip(".-") + "-" + hashlib.sha256(full.encode()).hexdigest()[:10]


def is_headless(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def is_api_service(svc: dict) -> bool:
    """default/kubernetes: its endpoint is the tenant apiserver on the host, which only a
    load balancer marked `apiServer` reaches (the operator finds the address itself)."""
    return svc_key(svc) == ("default", "kubernetes")


def is_resolver_service(svc: dict) -> bool:
    """kube-system/kube-dns: the VPC resolver's address, served by the provider's resolver."""
    return svc_key(svc) == ("kube-system", "kube-dns")


def served_cluster_ip(svc: dict, service_cidr: str | None) -> str | None:
    """The Service's ClusterIP if its load balancer answers on it (in the tenant's range)."""
    ip = (svc.get("spec") or {}).get("clusterIP")
    if not service_cidr or not ip:
        return None
    try:
        return ip if ipaddress.ip_address(ip) in ipaddress.ip_network(service_cidr) else None
    except ValueError:
        return None


def wants_lb(svc: dict, service_cidr: str | None = None) -> bool:
    if is_api_service(svc) and not service_cidr:
        return False  # a cluster without a plan: its ClusterIP routes nowhere, nothing to serve
    if is_resolver_service(svc) and service_cidr:
        return False
    spec = svc.get("spec") or {}
    return spec.get("type", "ClusterIP") in ("ClusterIP", "NodePort", "LoadBalancer") and not is_headless(svc) \
        and bool(spec.get("ports"))


def external_type(svc: dict) -> str | None:
    """"internet" or "intranet" for a LoadBalancer Service, else None."""
    if (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return None
    asked = ((svc["metadata"].get("annotations") or {}).get(ADDRESS_TYPE_ANNOTATION) or "internet").lower()
    return "intranet" if asked == "intranet" else "internet"


def ready_endpoints(slices: list[dict], *, include_not_ready: bool = False) -> list[dict]:
    """Endpoints (address, hostname, targetRef) that may take traffic, deduplicated by IP."""
    out: dict[str, dict] = {}
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False and cond.get("terminating") is not True
            if not (ready or include_not_ready):
                continue
            for ip in ep.get("addresses") or []:
                out.setdefault(ip, {"ip": ip, "hostname": ep.get("hostname"), "targetRef": ep.get("targetRef")})
    return [out[k] for k in sorted(out)]


def _slice_port(sl: dict, port: dict) -> int | None:
    """The port this EndpointSlice gives for a Service port (matched by name and protocol,
    as kube-proxy matches them), or None when the slice does not serve it."""
    for p in sl.get("ports") or []:
        if (p.get("name") or "") == (port.get("name") or "") and \
                (p.get("protocol") or "TCP") == (port.get("protocol") or "TCP") and p.get("port"):
            return int(p["port"])
    return None


def backend_ports(svc: dict, slices: list[dict], lsts: list[dict]) -> dict[str, list[dict]]:
    """Per endpoint IP, the listeners it serves and on which port: an EndpointSlice serves
    only the Service ports it lists, on the port it gives (slices of one Service may list
    different ports, or give one named targetPort different numbers). Pure."""
    by_port = {(p.get("protocol") or "TCP", int(p["port"])): p for p in (svc.get("spec") or {}).get("ports") or []}
    out: dict[str, list[dict]] = {}
    for lst in lsts:
        port = by_port.get((lst["protocol"], lst["port"]))
        if port is None:
            continue
        for sl in slices:
            target = _slice_port(sl, port)
            if target is None and not sl.get("ports"):
                target = lst["targetPort"]  # a slice without ports: the Service's own targetPort
            if target is None:
                continue
            for e in ready_endpoints([sl]):
                entry = {"protocol": lst["protocol"], "port": lst["port"], "targetPort": target}
                if entry not in out.setdefault(e["ip"], []):
                    out[e["ip"]].append(entry)
    return out


def target_port(port: dict, slices: list[dict]) -> int | None:
    """The backend port of a Service port: the EndpointSlice says it for named targetPorts."""
    for sl in slices:
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == (port.get("name") or "") and p.get("port"):
                return int(p["port"])
    tp = port.get("targetPort", port.get("port"))
    if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
        return int(tp)
    return None  # a named port no endpoint resolves yet


def api_listeners(svc: dict, slices: list[dict]) -> list[dict]:
    """The `kubernetes` Service's ports, and the port its Endpoints advertise (the apiserver's
    secure port, at the ClusterIP): clients that dial the endpoints reach it too."""
    out = listeners(svc, slices)
    for sl in slices:
        for p in sl.get("ports") or []:
            if p.get("port") and (p.get("protocol") or "TCP") == "TCP" \
                    and all(lst["port"] != int(p["port"]) for lst in out):
                out.append({"protocol": "TCP", "port": int(p["port"]), "targetPort": int(p["port"])})
    return out


def listeners(svc: dict, slices: list[dict]) -> list[dict]:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        proto = p.get("protocol") or "TCP"
        tp = target_port(p, slices)
        if proto not in ("TCP", "UDP") or tp is None:
            continue
        lst = {"protocol": proto, "port": int(p["port"]), "targetPort": tp}
        if p.get("name"):
            lst["name"] = p["name"][:63]
        out.append(lst)
    return out


def lb_refusal(svc: dict, slices: list[dict], service_cidr: str | None = None) -> str | None:
    """Why a Service that wants load balancers cannot have them, for an Event on it (pure)."""
    if not wants_lb(svc, service_cidr):
        return None
    n = len(listeners(svc, slices))
    if n > MAX_LISTENERS:
        return (f"spec.ports: {n} ports, but a load balancer has at most {MAX_LISTENERS} listeners; "
                "split the Service")
    return None


def ignored_ports(svc: dict, service_cidr: str | None = None) -> list[str]:
    """Ports no load balancer serves (a protocol other than TCP and UDP), and a
    loadBalancerIP an intranet load balancer cannot take, for an Event (pure)."""
    if not wants_lb(svc, service_cidr):
        return []
    out = [f"spec.ports[{i}].protocol: {p.get('protocol')} is not served (sk8s load balancers serve TCP and UDP)"
           for i, p in enumerate((svc.get("spec") or {}).get("ports") or [])
           if (p.get("protocol") or "TCP") not in ("TCP", "UDP")]
    asked = (svc.get("spec") or {}).get("loadBalancerIP")
    cluster_ip = served_cluster_ip(svc, service_cidr)
    if asked and cluster_ip and external_type(svc) == "intranet" and asked != cluster_ip:
        out.append(f"spec.loadBalancerIP: {asked} is not used: an intranet load balancer answers on the "
                   f"Service's ClusterIP {cluster_ip}")
    return out


def build_servicelbs(svc: dict, slices: list[dict], *, cluster: str, cluster_uid: str,
                     namespace: str, service_cidr: str | None = None) -> list[dict]:
    """The ServiceLBs a Service needs, keyed by name (empty when it needs none)."""
    if not wants_lb(svc, service_cidr):
        return []
    api = is_api_service(svc)
    lsts = api_listeners(svc, slices) if api else listeners(svc, slices)
    if not lsts:
        return []
    meta = svc["metadata"]
    backends = [] if api else _backends(svc, slices, lsts)
    cluster_ip = served_cluster_ip(svc, service_cidr)
    labels = {LABEL_CLUSTER: label_value(cluster), LABEL_CLUSTER_UID: label_value(cluster_uid),
              LABEL_SERVICE_NAMESPACE: label_value(meta["namespace"]),
              LABEL_SERVICE_NAME: label_value(meta["name"]), LABEL_SERVICE_UID: label_value(meta["uid"])}
    out = []
    external = external_type(svc)
    types = ["intranet"] + (["internet"] if external == "internet" else [])
    # The EXTERNAL-IP is the one a Service's loadBalancerIP asks for (deprecated upstream,
    # still honoured: taken if free and in range, else refused with an Event naming it).
    asked = (svc.get("spec") or {}).get("loadBalancerIP") if external else None
    for t in types:
        spec = {"clusterRef": {"name": cluster},
                "service": {"namespace": meta["namespace"], "name": meta["name"]},
                "addressType": t, "vpcID": cluster_uid,
                "listeners": lsts, "backends": backends}
        if t == "intranet" and cluster_ip:
            spec["loadBalancerIP"] = cluster_ip  # ClusterIP, DNS name and load balancer agree
        elif asked and t == external:
            spec["loadBalancerIP"] = asked
        if api and t == "intranet":
            spec["apiServer"] = True
        elif affinity_seconds(svc):
            spec["sessionAffinityTimeoutSeconds"] = affinity_seconds(svc)
        out.append({
            "apiVersion": API_VERSION, "kind": "ServiceLB",
            "metadata": {"name": servicelb_name(meta["namespace"], meta["name"], t == "internet"),
                         "namespace": namespace, "labels": labels},
            "spec": spec,
        })
    return out


def _backends(svc: dict, slices: list[dict], lsts: list[dict]) -> list[dict]:
    """Ready endpoints as ServiceLB backends; `ports` only when some endpoint does not serve
    every listener on the listener's targetPort (the common case stays short)."""
    ns = svc["metadata"]["namespace"]
    served = backend_ports(svc, slices, lsts)
    everywhere = [{"protocol": lst["protocol"], "port": lst["port"], "targetPort": lst["targetPort"]} for lst in lsts]
    uniform = all(sorted(v, key=str) == sorted(everywhere, key=str) for v in served.values())
    out = []
    for e in ready_endpoints(slices):
        if e["ip"] not in served:
            continue  # in no slice that serves one of the Service's ports
        b = {"ip": e["ip"], "ready": True}
        if e.get("targetRef"):
            b["targetRef"] = f"{ns}/{e['targetRef']['name']}"
        if not uniform:
            b["ports"] = served[e["ip"]]
        out.append(b)
    return out


DEFAULT_AFFINITY_SECONDS = 10800  # the API's default sessionAffinityConfig.clientIP.timeoutSeconds


def affinity_seconds(svc: dict) -> int | None:
    """How long a client keeps its backend (`sessionAffinity: ClientIP`), None without."""
    spec = svc.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds"))
    return int(timeout) if timeout else DEFAULT_AFFINITY_SECONDS


def lb_failure(lb: dict) -> str | None:
    """A ServiceLB's failure as its operator reported it, for an Event on the Service (pure)."""
    st = lb.get("status") or {}
    if st.get("phase") != "Failed":
        return None
    return st.get("message") or "load balancer failed"


def lb_address(lb: dict | None) -> str | None:
    st = (lb or {}).get("status") or {}
    return st.get("address") if st.get("phase") == "Ready" else None


def ingress(svc: dict, lbs: dict[str, dict]) -> list[dict]:
    """status.loadBalancer.ingress of a LoadBalancer Service, from its ServiceLBs' status."""
    kind = external_type(svc)
    if kind is None:
        return []
    ns, name = svc_key(svc)
    addr = lb_address(lbs.get(servicelb_name(ns, name, kind == "internet")))
    return [{"ip": addr, "ipMode": "VIP"}] if addr else []


def records(services: list[dict], slices_of, lbs: dict[str, dict], service_cidr: str | None = None) -> list[dict]:
    """The zone's record sets: `slices_of(ns, name)` gives a Service's EndpointSlices. A
    Service name answers its ClusterIP as kube-dns does (with a plan; before: its load
    balancer's address once it has one)."""
    out: dict[tuple[str, str], dict] = {}

    def add(rr: str, rtype: str, values: list[str]) -> None:
        if values:
            out[(rr, rtype)] = {"rr": rr, "type": rtype, "values": sorted(set(values)), "ttl": 5}

    for svc in services:
        ns, name = svc_key(svc)
        spec = svc.get("spec") or {}
        rr = f"{name}.{ns}.svc"
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                add(rr, "CNAME", [spec["externalName"]])
            continue
        if is_headless(svc):
            eps = ready_endpoints(slices_of(ns, name), include_not_ready=bool(spec.get("publishNotReadyAddresses")))
            add(rr, "A", [e["ip"] for e in eps])
            for e in eps:
                if e.get("hostname"):
                    add(f"{e['hostname']}.{rr}", "A", [e["ip"]])
        else:
            addr = served_cluster_ip(svc, service_cidr) or (
                None if service_cidr else lb_address(lbs.get(servicelb_name(ns, name, False))))
            if addr:
                add(rr, "A", [addr])
        for p in spec.get("ports") or []:
            if p.get("name") and (rr, "A") in out:
                proto = (p.get("protocol") or "TCP").lower()
                add(f"_{p['name']}._{proto}.{rr}", "SRV", [f"0 100 {p['port']} {rr}.{ZONE_NAME}"])
    return [out[k] for k in sorted(out)]


def build_zone(*, cluster: str, cluster_uid: str, namespace: str, zone_records: list[dict]) -> dict:
    return {
        "apiVersion": API_VERSION, "kind": "PrivateZone",
        "metadata": {"name": ZONE_OBJECT, "namespace": namespace,
                     "labels": {LABEL_CLUSTER: label_value(cluster), LABEL_CLUSTER_UID: label_value(cluster_uid)}},
        "spec": {"zoneName": ZONE_NAME, "clusterRef": {"name": cluster}, "vpcIDs": [cluster_uid],
                 "records": zone_records},
    }
