"""The fence around a metapod tenant's namespace (providers/metapod/netpol.py), read as a
NetworkPolicy implementation reads it: which peers may connect, and to what."""
import ipaddress

import pytest

from operators import config
from operators.providers.metapod.netpol import build_isolation
from operators.providers.metapod.podbuild import MetaPlacement

PLACEMENT = MetaPlacement("home-1")


def _peer_allows(peer: dict, ip: str, namespace: str, peer_namespace: str | None) -> bool:
    """One NetworkPolicyPeer: `peer_namespace` is the namespace of a Pod at `ip`, None for
    an address that is no Pod's (a node, the internet)."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        addr = ipaddress.ip_address(ip)
        return (addr in ipaddress.ip_network(block["cidr"])
                and not any(addr in ipaddress.ip_network(e) for e in block.get("except", [])))
    if "namespaceSelector" in peer:
        return peer_namespace == peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    return peer_namespace == namespace  # a bare podSelector {}: this namespace's Pods


def allowed(policy: dict, direction: str, ip: str, port: int, peer_namespace: str | None = None) -> bool:
    key, peers_key = ("ingress", "from") if direction == "in" else ("egress", "to")
    namespace = policy["metadata"]["namespace"]
    for rule in policy["spec"][key]:
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        if any(_peer_allows(p, ip, namespace, peer_namespace) for p in rule[peers_key]):
            return True
    return False


def test_one_policy_selects_every_pod_of_the_namespace_both_ways():
    pol = build_isolation("sk8s-t-a", PLACEMENT)
    assert pol["metadata"] == {"name": "sk8s-sandboxes", "namespace": "sk8s-t-a",
                               "labels": {"sk8s.io/home": "home-1", "sk8s.io/provider": "metapod"}}
    assert pol["spec"]["podSelector"] == {} and pol["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("ip,port,peer_ns,ok", [
    ("10.244.1.7", 8080, "sk8s-t-a", True),        # its own Pods
    ("10.244.2.9", 8080, "sk8s-t-b", False),       # another tenant's Pod
    ("10.244.2.9", 53, "sk8s-t-b", False),         # ... not even on the DNS port
    ("10.244.0.4", 53, "kube-system", False),      # the meta-cluster's DNS Pods
    ("10.96.0.1", 443, None, False),               # a meta Service (and its backends are private)
    ("172.18.0.2", 6443, None, False),             # a node: the meta apiserver, its kubelet
    ("172.18.0.2", 10250, None, False),
    ("169.254.169.254", 80, None, False),          # the metadata service
    ("100.100.2.136", 443, None, False),           # cloud-internal services
    ("100.100.2.136", 53, None, True),             # ... but the node's resolver (dnsPolicy Default)
    ("93.184.216.34", 443, None, True),            # the internet
])
def test_egress_reaches_its_own_pods_and_the_internet_only(ip, port, peer_ns, ok):
    assert allowed(build_isolation("sk8s-t-a", PLACEMENT), "out", ip, port, peer_ns) is ok


def test_with_name_servers_dns_goes_to_them_only():
    pol = build_isolation("sk8s-t-a", MetaPlacement("h", name_servers=("10.0.0.10",)))
    assert allowed(pol, "out", "10.0.0.10", 53)
    assert not allowed(pol, "out", "10.0.0.11", 53) and not allowed(pol, "out", "100.100.2.136", 53)


@pytest.mark.parametrize("ip,peer_ns,ok", [
    ("10.244.1.7", "sk8s-t-a", True),          # its own Pods
    ("10.244.3.3", "sk8s-planes", True),       # its plane (whose egress proxy admits only its own)
    ("10.244.2.9", "sk8s-t-b", False),         # another tenant's Pod
    ("10.244.0.5", "default", False),          # any other Pod of the meta-cluster
    ("172.18.0.3", None, True),                # a node: load-balancer traffic kube-proxy masqueraded
    ("203.0.113.9", None, True),               # a load balancer's client
])
def test_ingress_from_its_own_pods_its_plane_and_outside_the_pod_ranges(ip, peer_ns, ok):
    assert allowed(build_isolation("sk8s-t-a", PLACEMENT), "in", ip, 80, peer_ns) is ok


def test_excepts_are_merged_ipv4_inside_their_block():
    pol = build_isolation("ns", MetaPlacement("h", private_cidrs=("10.0.0.0/8", "fc00::/7"),
                                              pod_cidrs=("10.244.0.0/16", "192.168.7.0/24")))
    block = pol["spec"]["egress"][0]["to"][1]["ipBlock"]
    assert block == {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.7.0/24"]}


def test_the_settings_default_to_the_private_ranges_and_read_the_environment(monkeypatch):
    monkeypatch.delenv("SK8S_METAPOD_PRIVATE_CIDRS", raising=False)
    monkeypatch.setenv("SK8S_METAPOD_POD_CIDRS", "10.42.0.0/16, 10.43.0.0/16")
    monkeypatch.setenv("SK8S_PLANE_NAMESPACE", "planes")
    got = config.metapod_network_settings()
    assert got == {"private_cidrs": tuple(config.METAPOD_PRIVATE_CIDRS.split(",")),
                   "pod_cidrs": ("10.42.0.0/16", "10.43.0.0/16"), "plane_namespace": "planes"}
    assert MetaPlacement("h").private_cidrs == got["private_cidrs"]
