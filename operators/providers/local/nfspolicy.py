"""Where a pod's NFS volume may connect: a decision made before anything is mounted.

The local provider mounts an `nfs` volume on the host (mount(8) in the host's network
namespace), and the host reaches every tenant VPC, the service range and its own loopback
services. Left alone, a tenant's `nfs.server` would make the host connect on its behalf to
another tenant's pod or to a service of the host. So the server is first reduced to one
address (a canonical IP literal, or a host name resolved once here; that address, not the
name, goes to mount(8), so a name cannot resolve elsewhere between the check and the
mount), and that address must be outside everything sk8s owns, except the pod range of
the sandbox's own VPC (a tenant's NFS server pod).

`SK8S_NFS_ALLOWED` (comma-separated CIDRs) lets a meta-cluster admin trust ranges that are
otherwise refused as the host's own (a NAS on the host, a loopback test server): it never
opens another tenant's VPC, the service range, the load balancer range or the admin
sandbox network.

Everything here but `resolve` is pure.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1123 labels; a final label that is a number (or 0x-hex) is an address in disguise:
# inet_aton reads "127.1", "2130706433" and "0x7f000001" as 127.0.0.1.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_NUMERIC = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_COMPAT = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses (::127.0.0.1)


class NfsRefused(ValueError):
    """The server is not one the host may connect to for this pod; the text says why."""


class NfsUnresolvable(NfsRefused):
    """The name does not resolve on the host (perhaps not yet: retried)."""


def literal(server: str) -> Address | None:
    """The server as an IP address when it is a canonical IP literal, None when it is a host
    name; NfsRefused for anything else (non-canonical numbers, IPv6 zones, bad names)."""
    try:
        ip = ipaddress.ip_address(server)
    except ValueError:
        ip = None
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            raise NfsRefused(f"{server!r} has an IPv6 zone")
        return ip
    name = server[:-1] if server.endswith(".") else server
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise NfsRefused(f"{server!r} is not a host name or a canonical IP address")
    if _NUMERIC.match(labels[-1]):
        raise NfsRefused(f"{server!r} is not a canonical IP address (write IPv4 as four decimal numbers, "
                         "a.b.c.d)")
    if labels[-1].lower() == "localhost":
        raise NfsRefused(f"{server!r} is the host itself (localhost)")
    return None


def check_nfs_server(addr: Address, *, own_vpc: Network | None, pool: Network, service_cidr: Network,
                     host_addresses: Iterable[Address], allowed: Iterable[Network] = (),
                     lb_range: Network | None = None, admin_network: Network | None = None) -> str | None:
    """Why the host must not connect to `addr` for a sandbox whose own VPC pod range is
    `own_vpc` (None outside a VPC), or None when it may."""
    if isinstance(addr, ipaddress.IPv6Address) and (addr in _MAPPED or (addr in _COMPAT and int(addr) > 1)):
        return f"{addr} is an IPv4 address written as IPv6 (write the IPv4 address)"
    if addr.is_unspecified:
        return f"{addr} is the unspecified address"
    if addr.is_multicast:
        return f"{addr} is a multicast address"
    # sk8s's own ranges: other tenants, services, load balancers. No admin trust opens them.
    if addr in service_cidr:
        return f"{addr} is in the service range {service_cidr} (a ClusterIP is not an NFS server's address)"
    if lb_range is not None and addr in lb_range:
        return f"{addr} is in the load balancer range {lb_range}"
    if admin_network is not None and addr in admin_network and not (own_vpc is not None and addr in own_vpc):
        return f"{addr} is in the admin sandbox network {admin_network}"
    if addr in pool and not (own_vpc is not None and addr in own_vpc):
        return (f"{addr} is in the VPC pool {pool} but not in this pod's VPC pod range"
                + (f" {own_vpc}" if own_vpc is not None else ""))
    if any(addr in net for net in allowed):
        return None  # trusted by the meta-cluster admin (SK8S_NFS_ALLOWED)
    if addr.is_loopback:
        return f"{addr} is a loopback address (the host itself)"
    if addr.is_link_local:
        return f"{addr} is a link-local address"
    if addr in set(host_addresses):
        return f"{addr} is an address of the host"
    return None


def parse_allowed(text: str) -> list[Network]:
    """SK8S_NFS_ALLOWED: comma-separated CIDRs (a bare address is a /32 or /128)."""
    out = []
    for part in (p.strip() for p in (text or "").split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"SK8S_NFS_ALLOWED: {part!r} is not a CIDR: {exc}") from exc
    return out


def host_addresses_from_ip_json(text: str) -> set[Address]:
    """Every address of every interface in `ip -j addr` output."""
    out = set()
    for link in json.loads(text or "[]"):
        for a in link.get("addr_info") or []:
            try:
                out.add(ipaddress.ip_address(a.get("local", "").split("%")[0]))
            except ValueError:
                continue
    return out


def pick(infos: list[tuple]) -> Address:
    """The address mount(8) will use, from getaddrinfo results (IPv4 first: tenant networks are IPv4)."""
    addrs = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addrs:
        raise NfsUnresolvable("resolves to no address")
    return sorted(addrs, key=lambda a: a.version)[0]


async def resolve(server: str, getaddrinfo: Callable[..., Awaitable[list[tuple]]]) -> Address:
    """One address for the server: the literal itself, or the name resolved once (on the host)."""
    ip = literal(server)
    if ip is not None:
        return ip
    try:
        infos = await getaddrinfo(server, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise NfsUnresolvable(f"{server!r} cannot be resolved on the host: {getattr(exc, 'strerror', None) or exc}") \
            from exc
    return pick(infos)
