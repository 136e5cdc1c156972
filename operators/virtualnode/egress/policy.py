"""Where the tenant's kube-apiserver may connect: the decision of its egress proxy.

A tenant chooses what its apiserver dials: a webhook's `clientConfig.url`, the Endpoints
of a selector-less Service behind a webhook or an APIService, a pod's `status.podIP` (for
`pods/proxy`), the Node's address and kubelet port (for logs and exec). The apiserver runs
on this host, which reaches every tenant's VPC and its own loopback services (the meta
apiserver, etcd, the other tenants' apiservers). So every such connection passes this
decision, made on the numeric address that will be dialled (a name is resolved first and
each of its addresses judged): allowed are the tenant's own VPC (its pod and service
ranges, not this host's addresses on it) and the tenant's own kubelet endpoint; nothing
else, so the apiserver reaches no more than a pod of the tenant does.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REASON = 200


@dataclass(frozen=True)
class EgressPolicy:
    """The tenant's ranges, or none yet (a cluster whose VPC does not exist yet)."""

    kubelet: tuple[str, int]                      # the virtual node's own (address, port)
    networks: tuple[ipaddress.IPv4Network, ...] = ()
    host_addresses: frozenset[str] = field(default_factory=frozenset)  # this host on the VPC (gateway)

    @classmethod
    def for_vpc(cls, kubelet: tuple[str, int], subnet: ipaddress.IPv4Network | None,
                gateway: str = "") -> "EgressPolicy":
        if subnet is None:
            return cls(kubelet)
        # The network and broadcast addresses are nobody's; the gateway is this host's own
        # address on the bridge (podman's default: the first one), which pods may not dial either.
        host = {str(subnet.network_address), str(subnet.broadcast_address),
                gateway or str(subnet.network_address + 1)}
        return cls(kubelet, (subnet,), frozenset(host))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def parse_authority(authority: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` of a CONNECT request; ValueError when it is neither."""
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("malformed [IPv6]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep or not host:
            raise ValueError("no port")
        if ":" in host:
            raise ValueError("an IPv6 address must be in brackets")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("bad port")
    if not host or any(c in host for c in " /\\@") or not host.isprintable():
        raise ValueError("bad host")
    return host, int(port_text)


def literal_address(host: str) -> Address | None:
    """The address a host names literally (strict dotted quad or IPv6), else None: a name
    (or an odd spelling such as `127.1`) is left to the resolver, whose answer is judged."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def decide(address: Address | str, port: int, policy: EgressPolicy) -> Decision:
    """Whether the apiserver may connect to this numeric address and port."""
    ip = ipaddress.ip_address(address)
    if (str(ip), port) == policy.kubelet:
        return Decision(True)
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is None:
            return Decision(False, f"{ip} is IPv6; this cluster's network is IPv4 only")
        ip = mapped  # ::ffff:a.b.c.d is judged as a.b.c.d (and reached as such)
    if ip.is_loopback or ip.is_unspecified:
        return Decision(False, f"{ip} is this host (loopback or unspecified), not this cluster's network")
    if str(ip) in policy.host_addresses:
        return Decision(False, f"{ip} is this host's own address on the cluster's VPC")
    if not policy.networks:
        return Decision(False, f"{ip} is outside this cluster's network: the cluster has no VPC yet")
    if any(ip in net for net in policy.networks):
        return Decision(True)
    ranges = ", ".join(str(n) for n in policy.networks)
    return Decision(False, f"{ip} is outside this cluster's VPC {ranges}")


def pick(addresses: list[str], port: int, policy: EgressPolicy) -> tuple[str | None, Decision]:
    """The first resolved address that may be dialled, else the refusal of the first one."""
    first: Decision | None = None
    for a in addresses:
        d = decide(a, port, policy)
        if d.allowed:
            return a, d
        first = first or d
    return None, first or Decision(False, "the name resolves to no address")


def reason_phrase(text: str) -> str:
    """A refusal as an HTTP reason phrase: printable ASCII only (a tenant's host name may be
    in it, and must not end the status line or add a header), and short."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean[:MAX_REASON]
