"""Command-line contract of the virtual node (the ServerlessCluster operator launches it)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
from dataclasses import dataclass

from ..config import log_level
from ..models.contracts import LABEL_CLUSTER_UID, MAX_VIRTUAL_NODES, VIRTUAL_NODE_NAME
from ..quantity import cpu_cores, memory_bytes
from .nodeset import DEFAULT_ZONE_BASE, NodeShare, shares

# Who binds pods: this process's binder (one node: nothing to choose), or a kube-scheduler
# that the plane runs beside it (several nodes); the binder then stays out of its way.
SCHEDULER_BUILTIN, SCHEDULER_EXTERNAL = "builtin", "external"

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Without a quota the node still has to advertise some capacity; these are large enough
# to never bind-limit a tenant on one machine, like other virtual kubelets do.
UNLIMITED_CPU = "1000"
UNLIMITED_MEMORY = "4Ti"


@dataclass
class Options:
    tenant_kubeconfig: str
    meta_kubeconfig: str
    meta_namespace: str
    cluster: str
    cluster_uid: str
    node_name: str
    port: int
    address: str
    tls_cert: str
    tls_key: str
    client_ca: str
    max_pods: int
    cpu: str
    memory: str
    provider: str
    cpu_limited: bool = True
    memory_limited: bool = True
    service_cidr: str = ""  # the tenant's ClusterIP range where load balancers answer on ClusterIPs
    log_level: str = "INFO"
    egress_socket: str = ""
    virtual_nodes: int = 1
    zone_base: str = DEFAULT_ZONE_BASE
    scheduler: str = SCHEDULER_BUILTIN

    @property
    def nodes(self) -> list[NodeShare]:
        """Every Node this process registers, the first named --node-name (nodeset.py)."""
        if self.virtual_nodes == 1:  # the whole capacity, as given
            return [NodeShare(self.node_name, "", self.cpu, self.memory, self.max_pods)]
        return shares(first=self.node_name, count=self.virtual_nodes, zone_base=self.zone_base,
                      cpu_millis=self.cpu_millis, memory_bytes=self.memory_bytes, pods=self.max_pods,
                      cpu=self.cpu, memory=self.memory, cpu_limited=self.cpu_limited,
                      memory_limited=self.memory_limited)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def cpu_millis(self) -> int:
        return int(cpu_cores(self.cpu) * 1000)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m operators.virtualnode",
                                description="sk8s virtual node: runs a tenant cluster's pods as SandboxPods")
    p.add_argument("--tenant-kubeconfig", required=True, help="credentials for the tenant apiserver")
    p.add_argument("--meta-kubeconfig", required=True, help="credentials for the meta-cluster")
    p.add_argument("--meta-namespace", required=True, help="meta namespace of this tenant's SandboxPods")
    p.add_argument("--cluster", required=True, help="ServerlessCluster name (spec.clusterRef.name)")
    p.add_argument("--cluster-uid", required=True, help=f"ServerlessCluster uid (label {LABEL_CLUSTER_UID})")
    p.add_argument("--node-name", default=VIRTUAL_NODE_NAME, help="name of the Node object")
    p.add_argument("--port", type=int, required=True, help="kubelet HTTPS port")
    p.add_argument("--address", default="127.0.0.1", help="kubelet address (Node InternalIP)")
    p.add_argument("--tls-cert", required=True, help="kubelet serving certificate")
    p.add_argument("--tls-key", required=True, help="kubelet serving key")
    p.add_argument("--client-ca", required=True, help="CA that signs the tenant apiserver's client cert")
    p.add_argument("--max-pods", type=int, default=100, help="pod capacity (the cluster's quota)")
    p.add_argument("--cpu", default=None, help="cpu capacity, a quantity (default: unlimited)")
    p.add_argument("--memory", default=None, help="memory capacity, a quantity (default: unlimited)")
    p.add_argument("--provider", default="local", help="provider that serves container logs")
    p.add_argument("--egress-socket", default="",
                   help="Unix socket of the tenant apiserver's egress proxy (its egress selector's udsName)")
    p.add_argument("--service-cidr", default="",
                   help="the tenant's ClusterIP range (its VPC's service range): each Service's load "
                        "balancer takes its ClusterIP; empty for a cluster made before address plans")
    p.add_argument("--virtual-nodes", type=int, default=1,
                   help=f"how many Nodes to register (1-{MAX_VIRTUAL_NODES}): --node-name, then --node-name-1, ...; "
                        "the capacity is split across them")
    p.add_argument("--zone-base", default=DEFAULT_ZONE_BASE,
                   help="with several nodes, their zones are <zone-base>-a, -b, ... (the cluster's region)")
    p.add_argument("--scheduler", default=SCHEDULER_BUILTIN, choices=[SCHEDULER_BUILTIN, SCHEDULER_EXTERNAL],
                   help="builtin: bind pods to the (single) node here; external: a kube-scheduler binds them")
    p.add_argument("--log-level", default=log_level(),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def parse(argv: list[str] | None = None) -> Options:
    """Parse and validate; a bad argument exits with status 2 and a message naming it."""
    p = parser()
    a = p.parse_args(argv)
    for flag in ("tenant_kubeconfig", "meta_kubeconfig", "tls_cert", "tls_key", "client_ca"):
        path = getattr(a, flag)
        if not os.path.isfile(path):
            p.error(f"--{flag.replace('_', '-')}: no such file: {path}")
    if not _DNS1123_SUBDOMAIN.match(a.node_name) or len(a.node_name) > 253:
        p.error(f"--node-name: {a.node_name!r} is not a DNS-1123 subdomain")
    if not _DNS1123_SUBDOMAIN.match(a.meta_namespace) or len(a.meta_namespace) > 63:
        p.error(f"--meta-namespace: {a.meta_namespace!r} is not a valid namespace name")
    if not a.cluster or not a.cluster_uid:
        p.error("--cluster and --cluster-uid must not be empty")
    if not 1 <= a.port <= 65535:
        p.error(f"--port: {a.port} is not a port number")
    if a.max_pods < 1:
        p.error(f"--max-pods: must be at least 1, got {a.max_pods}")
    if not 1 <= a.virtual_nodes <= MAX_VIRTUAL_NODES:
        p.error(f"--virtual-nodes: must be 1 to {MAX_VIRTUAL_NODES}, got {a.virtual_nodes}")
    if a.virtual_nodes > 1 and a.scheduler != SCHEDULER_EXTERNAL:
        # The binder has no choice to make among nodes (no spread, no anti-affinity).
        p.error("--virtual-nodes above 1 needs --scheduler=external")
    if a.max_pods < a.virtual_nodes:
        p.error(f"--max-pods: {a.max_pods} is less than one pod per node (--virtual-nodes {a.virtual_nodes})")
    if not _DNS1123_SUBDOMAIN.match(a.zone_base) or len(a.zone_base) > 60:
        p.error(f"--zone-base: {a.zone_base!r} is not a DNS-1123 name")
    if a.service_cidr:
        try:
            ipaddress.ip_network(a.service_cidr, strict=True)
        except ValueError as exc:
            p.error(f"--service-cidr: {exc}")
    cpu, memory = a.cpu or UNLIMITED_CPU, a.memory or UNLIMITED_MEMORY
    try:
        if cpu_cores(cpu) <= 0:
            raise ValueError("must be positive")
    except ValueError as exc:
        p.error(f"--cpu: invalid quantity {cpu!r}: {exc}")
    try:
        if memory_bytes(memory) <= 0:
            raise ValueError("must be positive")
    except ValueError as exc:
        p.error(f"--memory: invalid quantity {memory!r}: {exc}")
    return Options(tenant_kubeconfig=a.tenant_kubeconfig, meta_kubeconfig=a.meta_kubeconfig,
                   meta_namespace=a.meta_namespace, cluster=a.cluster, cluster_uid=a.cluster_uid,
                   node_name=a.node_name, port=a.port, address=a.address, tls_cert=a.tls_cert,
                   tls_key=a.tls_key, client_ca=a.client_ca, max_pods=a.max_pods, cpu=cpu, memory=memory,
                   provider=a.provider, service_cidr=a.service_cidr, cpu_limited=a.cpu is not None, memory_limited=a.memory is not None,
                   log_level=a.log_level, egress_socket=a.egress_socket, virtual_nodes=a.virtual_nodes,
                   zone_base=a.zone_base, scheduler=a.scheduler)
