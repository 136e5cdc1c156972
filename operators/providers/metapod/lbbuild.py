"""Pure builders of the metapod load balancers (loadbalancer.py): a ServiceLB -> one
selector-less meta-cluster Service of type LoadBalancer in the ServiceLB's namespace (the
tenant's sandbox namespace), and the EndpointSlices that name its backends.

Backends are IPs (LBSpec.backends: the tenant's ready endpoints), and a metapod tenant
pod's IP is its sandbox Pod's: the slices list those IPs, each only if it is the IP of a
sandbox Pod of this installation in that namespace (`sandbox_ips`), with that Pod as
targetRef. No label mapping from tenant selectors to sandbox Pods is needed and a tenant's
hand-written EndpointSlice (any IP: another tenant's pod, a node, the meta apiserver) never
reaches kube-proxy: its IPs are refused, named in the health report.

Ports: one Service port per listener, named `<proto>-<port>`; the slices give each
backend's port for it (a backend that serves a listener on another port, or not at all,
goes into a slice of its own port list, as the endpointslice controller groups them).
"""
from __future__ import annotations

import ipaddress

from ... import API_VERSION
from ...models.contracts import LABEL_HOME, LABEL_LB_UID, LABEL_PROVIDER
from ..services import BackendHealth, LBListener, LBSpec, LBState
from .podbuild import PROVIDER

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "servicelb-metapod.sk8s.io"  # not the endpointslice controller's: it leaves them alone (a label value: no /)
MAX_ENDPOINTS = 100  # per slice (the endpointslice controller's default)
REFUSED = "not the IP of a sandbox Pod in this namespace: not served"


def service_name(lb_id: str) -> str:
    """`lb-<uid>`: a DNS-1035 label (a ServiceLB's own name holds dots)."""
    return f"lb-{lb_id}"


def port_name(lst: LBListener) -> str:
    return f"{lst.protocol.lower()}-{lst.port}"


def lb_labels(spec: LBSpec, home_id: str) -> dict[str, str]:
    return {LABEL_HOME: home_id, LABEL_PROVIDER: PROVIDER, LABEL_LB_UID: spec.id}


def owner_reference(spec: LBSpec) -> dict:
    """The ServiceLB as controller: deleting it deletes the Service and its slices."""
    return {"apiVersion": API_VERSION, "kind": "ServiceLB", "name": spec.name, "uid": spec.id,
            "controller": True, "blockOwnerDeletion": False}


def build_service(spec: LBSpec, home_id: str, lb_class: str | None) -> dict:
    """The meta Service. With a class (the operator's own pool, or a named controller) no
    node ports: the address is served by kube-proxy on every node, and a node port would
    expose the tenant's backends on every node's address besides."""
    svc: dict = {
        "type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
        "ports": [{"name": port_name(lst), "protocol": lst.protocol, "port": lst.port,
                   "targetPort": lst.target_port} for lst in spec.listeners],
    }
    if lb_class:
        svc["loadBalancerClass"] = lb_class
        svc["allocateLoadBalancerNodePorts"] = False
    elif spec.load_balancer_ip:
        svc["loadBalancerIP"] = spec.load_balancer_ip  # deprecated, still what clouds read
    if spec.affinity_seconds:
        svc["sessionAffinity"] = "ClientIP"
        svc["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": spec.affinity_seconds}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service_name(spec.id), "namespace": spec.namespace,
                         "labels": lb_labels(spec, home_id), "ownerReferences": [owner_reference(spec)]},
            "spec": svc}


def sandbox_ips(pods: list[dict], home_id: str) -> dict[str, dict]:
    """IP -> this installation's sandbox Pod that has it (not one being deleted)."""
    out: dict[str, dict] = {}
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if labels.get(LABEL_HOME) == home_id and labels.get(LABEL_PROVIDER) == PROVIDER and ip \
                and not pod["metadata"].get("deletionTimestamp"):
            out[ip] = pod
    return out


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _endpoint(ip: str, pod: dict) -> dict:
    meta = pod["metadata"]
    out = {"addresses": [ip], "conditions": {"ready": pod_ready(pod)},
           "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}
    node = (pod.get("spec") or {}).get("nodeName")
    return {**out, "nodeName": node} if node else out


def port_groups(spec: LBSpec, ips: list[str]) -> dict[tuple, list[str]]:
    """The backends grouped by the (name, protocol, port) list they serve."""
    groups: dict[tuple, list[str]] = {}
    for ip in ips:
        ports = tuple(sorted((port_name(lst), lst.protocol, port) for lst in spec.listeners
                             for _, port in spec.targets(lst, [ip])))
        if ports:
            groups.setdefault(ports, []).append(ip)
    return groups


def build_slices(spec: LBSpec, pods_by_ip: dict[str, dict], home_id: str) -> list[dict]:
    """The EndpointSlices of the backends that are sandbox Pods here, named `lb-<uid>-<n>`."""
    served = [ip for ip in spec.backends if ip in pods_by_ip and _ipv4(ip)]
    out = []
    for ports, ips in sorted(port_groups(spec, served).items()):
        for start in range(0, len(ips), MAX_ENDPOINTS):
            chunk = ips[start:start + MAX_ENDPOINTS]
            labels = {**lb_labels(spec, home_id), SERVICE_NAME_LABEL: service_name(spec.id),
                      MANAGED_BY_LABEL: MANAGED_BY}
            out.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"{service_name(spec.id)}-{len(out)}", "namespace": spec.namespace,
                             "labels": labels, "ownerReferences": [owner_reference(spec)]},
                "ports": [{"name": name, "protocol": proto, "port": port} for name, proto, port in ports],
                "endpoints": [_endpoint(ip, pods_by_ip[ip]) for ip in chunk]})
    return out


def _ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def ingress_address(service: dict | None) -> str | None:
    """The address the load-balancer controller gave the Service (its first ingress)."""
    for ing in (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip") or ing.get("hostname"):
            return ing.get("ip") or ing.get("hostname")
    return None


def build_state(spec: LBSpec, address: str, pods_by_ip: dict[str, dict]) -> LBState:
    """Health as the meta-cluster sees it: a backend is healthy while its sandbox Pod is
    Ready (the meta kubelet runs its probes); a refused IP is unhealthy, named why."""
    backends, healthy = [], {lst: 0 for lst in spec.listeners}
    for lst in spec.listeners:
        for ip, port in spec.targets(lst, spec.backends):
            pod = pods_by_ip.get(ip)
            ok = pod is not None and _ipv4(ip) and pod_ready(pod)
            healthy[lst] += ok
            msg = None if ok else (REFUSED if pod is None or not _ipv4(ip) else "its sandbox Pod is not Ready")
            if all((b.ip, b.port) != (ip, port) for b in backends):
                backends.append(BackendHealth(ip, port, ok, msg))
    return LBState(address, [(lst, healthy[lst]) for lst in spec.listeners], backends)


def pool_addresses(entries: tuple[str, ...] | list[str]) -> list[str]:
    """The pool's addresses in order: single addresses, and the hosts of each CIDR."""
    out: list[str] = []
    for entry in entries:
        if "/" in entry:
            out += [str(a) for a in ipaddress.ip_network(entry, strict=False).hosts()]
        else:
            out.append(str(ipaddress.ip_address(entry)))
    return list(dict.fromkeys(out))


def pick_address(spec: LBSpec, recorded: str | None, pool: list[str], taken: dict[str, str]) -> str | None:
    """The pool address for an LB: the one it has, the one asked for, else the first free.
    None: the asked-for one is not in the pool or is another's, or the pool is exhausted."""
    def free(addr: str) -> bool:
        return addr in pool and taken.get(addr, spec.id) == spec.id
    if spec.load_balancer_ip:
        return spec.load_balancer_ip if free(spec.load_balancer_ip) else None
    if recorded and free(recorded):
        return recorded
    return next((a for a in pool if a not in taken), None)
