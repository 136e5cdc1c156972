"""A tenant's address plan, owned by its control plane (pure).

A plane is given a range of the VPC pool when it is made (before any cluster claims it):
the lower half for pods, the upper half for Services. Its apiserver allocates ClusterIPs
from the upper half, which is where the provider serves the VPC's intranet load balancers
and resolver, so a ClusterIP is the address its load balancer answers on. The provider
builds the VPC with this range when the plane is claimed.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..models.contracts import SERVICE_CIDR

LEGACY_KUBERNETES_IP = str(ipaddress.ip_network(SERVICE_CIDR)[1])  # planes made without a plan


@dataclass(frozen=True)
class NetworkPlan:
    vpc_cidr: str

    @property
    def _halves(self) -> list[ipaddress.IPv4Network]:
        net = ipaddress.ip_network(self.vpc_cidr, strict=True)
        return list(net.subnets(prefixlen_diff=1))

    @property
    def pod_cidr(self) -> str:
        return str(self._halves[0])

    @property
    def service_cidr(self) -> str:
        return str(self._halves[1])

    @property
    def kubernetes_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP: the apiserver takes the range's first address."""
        return str(self._halves[1][1])

    def status(self) -> dict:
        return {"vpcCIDR": self.vpc_cidr, "podCIDR": self.pod_cidr, "serviceCIDR": self.service_cidr}


def kube_dns_service(resolver: str) -> dict:
    """kube-system/kube-dns at the VPC resolver's address: the apiserver then never gives
    that address to another Service, and `kube-dns.kube-system` names the resolver as on
    any cluster. No selector: the resolver is the provider's, not a pod."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
            "spec": {"clusterIP": resolver,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}}
