"""The fence around a tenant's sandbox namespace: one NetworkPolicy, a pure builder.

With the metapod provider every tenant's sandboxes are Pods on the meta-cluster's shared
Pod network, where by default anything reaches anything. The namespace is the tenant's
boundary, so one policy selecting all its Pods allows only:

  ingress  from its own namespace's Pods; from the planes' namespace (its tenant
           apiserver's egress proxy, which itself lets a plane reach only its own tenant's
           Pods: providers/metapod/egress.py); from anywhere outside the meta-cluster's Pod
           ranges (its load balancers' clients; node addresses, which kube-proxy may
           masquerade them to, included).
  egress   to its own namespace's Pods; to anywhere outside the private ranges (the
           internet); DNS (port 53) to the configured name servers, or without any, to
           anything outside the Pod ranges (the node's resolver under dnsPolicy Default,
           never the meta-cluster's DNS Pods or another tenant's Pod).

So a sandbox reaches no other tenant's Pod, no meta Service (kube-proxy's DNAT happens
before the policy: its backends are Pods or nodes, in the private ranges), no node (its
kubelet, the meta apiserver) and not the metadata service (link-local). Both directions
fence: another tenant's Pod is stopped by its own egress rule and again by this ingress
rule. The meta-cluster's CNI must enforce NetworkPolicy (the kind bed's does: kube-router);
on one that does not, this object is inert, and the README says so.
"""
from __future__ import annotations

import ipaddress

from ...models.contracts import LABEL_HOME, LABEL_PROVIDER
from .podbuild import PROVIDER, MetaPlacement

NAME = "sk8s-sandboxes"
EVERYWHERE = "0.0.0.0/0"
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by the apiserver on every namespace
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def _v4(cidrs) -> list[str]:
    """The IPv4 ranges, merged (an `except` may not leave its `cidr`; IPv6 is not
    allowed at all: nothing here writes an IPv6 rule, so a dual-stack sandbox has none)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4)]


def _outside(cidrs) -> dict:
    excluded = _v4(cidrs)
    return {"ipBlock": {"cidr": EVERYWHERE, **({"except": excluded} if excluded else {})}}


def build_isolation(namespace: str, placement: MetaPlacement) -> dict:
    own = {"podSelector": {}}
    planes = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME: placement.plane_namespace}}}
    name_servers = [{"ipBlock": {"cidr": f"{ipaddress.ip_address(s)}/32"}}
                    for s in placement.name_servers if ipaddress.ip_address(s).version == 4]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": NAME, "namespace": namespace,
                     "labels": {LABEL_HOME: placement.home_id, LABEL_PROVIDER: PROVIDER}},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [own, planes, _outside(placement.pod_cidrs)]}],
            "egress": [
                {"to": [own, _outside([*placement.private_cidrs, *placement.pod_cidrs])]},
                {"to": name_servers or [_outside(placement.pod_cidrs)], "ports": DNS_PORTS},
            ],
        },
    }
