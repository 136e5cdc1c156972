"""Where a tenant's NFS volume may connect (operators/providers/local/nfspolicy.py)."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket

import pytest

from operators.providers.local import nfspolicy
from operators.providers.local.nfspolicy import NfsRefused, NfsUnresolvable, check_nfs_server, literal

net = ipaddress.ip_network
ip = ipaddress.ip_address

OWN = net("10.112.2.0/24")  # the pod range of this sandbox's VPC 10.112.2.0/23
HOST = {ip("127.0.0.1"), ip("::1"), ip("192.168.5.20"), ip("10.112.2.1"), ip("10.89.0.1"), ip("fe80::1")}


def check(addr: str, own=OWN, allowed=()) -> str | None:
    return check_nfs_server(ip(addr), own_vpc=own, pool=net("10.112.0.0/12"), service_cidr=net("10.96.0.0/16"),
                            host_addresses=HOST, allowed=[net(a) for a in allowed],
                            lb_range=net("127.77.0.0/16"), admin_network=net("10.89.0.0/24"))


@pytest.mark.parametrize("addr", ["10.112.2.7", "10.112.2.254", "192.168.7.9", "203.0.113.4", "2001:db8::5",
                                  "172.16.0.3"])
def test_servers_outside_sk8s_and_the_host_and_in_the_own_vpc_are_allowed(addr):
    assert check(addr) is None


@pytest.mark.parametrize("addr, why", [
    ("127.0.0.1", "loopback"), ("127.3.4.5", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "link-local"), ("fe80::2", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("192.168.5.20", "address of the host"),
    ("10.112.2.1", "address of the host"),          # the own VPC's gateway is the host
    ("10.112.4.9", "VPC pool"),                     # another tenant's pod
    ("10.112.3.254", "VPC pool"),                   # the own VPC's service range (LBs, resolver)
    ("10.127.255.1", "VPC pool"),
    ("10.96.0.1", "service range"), ("10.96.200.3", "service range"),
    ("127.77.0.4", "load balancer range"),
    ("10.89.0.5", "admin sandbox network"), ("10.89.0.1", "admin sandbox network"),
    ("::ffff:127.0.0.1", "IPv4 address written as IPv6"), ("::ffff:10.112.4.9", "IPv4 address written as IPv6"),
    ("::ffff:192.168.7.9", "IPv4 address written as IPv6"), ("::127.0.0.1", "IPv4 address written as IPv6"),
])
def test_the_host_other_tenants_and_sk8s_ranges_are_refused(addr, why):
    assert why in (check(addr) or "")


def test_outside_a_vpc_every_pool_address_is_refused():
    assert "VPC pool" in check("10.112.2.7", own=None)


def test_admin_trust_opens_the_hosts_own_but_never_sk8s_ranges():
    allowed = ["127.0.2.49/32", "192.168.5.0/24", "10.0.0.0/8"]
    assert check("127.0.2.49", allowed=allowed) is None
    assert check("192.168.5.20", allowed=allowed) is None
    assert "loopback" in check("127.0.0.1", allowed=allowed)
    for addr, why in [("10.112.4.9", "VPC pool"), ("10.96.0.1", "service range"),
                      ("10.89.0.5", "admin sandbox network"), ("224.0.0.1", "multicast")]:
        assert why in check(addr, allowed=allowed + ["0.0.0.0/0"])
    assert "loopback" in check("127.0.0.4", allowed=allowed)


@pytest.mark.parametrize("server", ["10.0.0.5", "2001:db8::5", "::1", "127.0.0.1"])
def test_canonical_literals_are_addresses(server):
    assert literal(server) == ip(server)


@pytest.mark.parametrize("server", ["nas", "nas.example.com", "nas.example.com.", "nfs-1.lan", "a1.b2"])
def test_names_are_left_to_resolve(server):
    assert literal(server) is None


@pytest.mark.parametrize("server", [
    "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.000.000.001",
    "010.112.2.7", "10.112.2.7.", "1.2.3.4.5", "localhost", "LocalHost", "localhost.", "db.localhost",
    "fe80::1%eth0", "-nas", "nas-", "a..b", "", "a_b", "n\u00e4s", "x" * 64 + ".com",
])
def test_non_canonical_addresses_and_the_host_by_name_are_refused(server):
    with pytest.raises(NfsRefused):
        literal(server)


def resolver(answer):
    async def getaddrinfo(host, port, **kw):
        if isinstance(answer, Exception):
            raise answer
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in answer]
    return getaddrinfo


def test_a_name_is_resolved_once_and_checked_as_the_address_it_gave():
    addr = asyncio.run(nfspolicy.resolve("nas.example", resolver(["127.0.0.1"])))
    assert addr == ip("127.0.0.1") and "loopback" in check(str(addr))
    addr = asyncio.run(nfspolicy.resolve("nas.example", resolver(["2001:db8::9", "10.112.2.9"])))
    assert addr == ip("10.112.2.9") and check(str(addr)) is None  # IPv4 first: VPCs are IPv4
    assert asyncio.run(nfspolicy.resolve("10.0.0.5", resolver(OSError("never asked")))) == ip("10.0.0.5")
    with pytest.raises(NfsUnresolvable):
        asyncio.run(nfspolicy.resolve("nas.example", resolver(socket.gaierror(-2, "Name or service not known"))))
    with pytest.raises(NfsUnresolvable):
        asyncio.run(nfspolicy.resolve("nas.example", resolver([])))
    with pytest.raises(NfsRefused):
        asyncio.run(nfspolicy.resolve("0x7f000001", resolver(["10.0.0.5"])))


def test_allowed_ranges_and_host_addresses_are_parsed():
    assert nfspolicy.parse_allowed(" 127.0.2.49/32, 192.168.0.0/16,10.1.2.3 ,") == [
        net("127.0.2.49/32"), net("192.168.0.0/16"), net("10.1.2.3/32")]
    assert nfspolicy.parse_allowed("") == []
    with pytest.raises(ValueError, match="SK8S_NFS_ALLOWED"):
        nfspolicy.parse_allowed("nas.lan")
    out = json.dumps([{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"},
                                                     {"family": "inet6", "local": "::1"}]},
                      {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.168.5.20"},
                                                       {"family": "inet6", "local": "fe80::1"}]},
                      {"ifname": "down", "addr_info": []}, {"ifname": "odd"}])
    assert nfspolicy.host_addresses_from_ip_json(out) == {ip("127.0.0.1"), ip("::1"), ip("192.168.5.20"),
                                                          ip("fe80::1")}
