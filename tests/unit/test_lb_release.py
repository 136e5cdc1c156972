"""A ServiceLB deleted before this operator run served it still has its recorded intranet
address taken out of its VPC, and a deletion never creates a VPC (issue 9, leaks)."""
import asyncio
import ipaddress

from operators.providers.local import loadbalancer
from operators.providers.local.loadbalancer import LocalLoadBalancers
from operators.providers.local.vpc import Vpc, VpcLayout

LAYOUT = VpcLayout(ipaddress.ip_network("10.112.4.0/23"))


class Vpcs:
    """The VPCs as `find` sees them; `ensure` must never be called by a deletion."""
    home_id = "h"

    def __init__(self, existing: dict[str, Vpc]):
        self.existing = existing

    async def find(self, vpc_id):
        return self.existing.get(vpc_id)

    async def ensure(self, vpc_id):
        raise AssertionError(f"a deletion created VPC {vpc_id}")


def run(monkeypatch, existing, reserved, *args):
    calls = []

    async def ip(ns, *argv):
        calls.append((ns, argv))
        return 0, ""
    monkeypatch.setattr(loadbalancer.netns, "ip", ip)
    lbs = LocalLoadBalancers(Vpcs(existing), "h")
    lbs.reserved = dict(reserved)
    asyncio.run(lbs.delete(*args))
    return calls, lbs.reserved


def test_the_recorded_address_leaves_the_vpc_without_in_memory_state(monkeypatch):
    vpc = Vpc("v1", "net", LAYOUT, "10.112.4.1", "/run/netns/anchor")
    calls, reserved = run(monkeypatch, {"v1": vpc}, {"10.112.5.1": "lb1", "10.112.5.2": "lb2"}, "lb1", "10.112.5.1", "v1")
    assert calls == [("/run/netns/anchor", ("addr", "del", "10.112.5.1/32", "dev", "eth0"))]
    assert reserved == {"10.112.5.2": "lb2"}


def test_nothing_is_removed_that_is_not_the_lbs_and_no_vpc_is_created(monkeypatch):
    vpc = Vpc("v1", "net", LAYOUT, "10.112.4.1", "/run/netns/anchor")
    # Another LB holds the address now; an address outside the service range; a VPC that is gone.
    assert run(monkeypatch, {"v1": vpc}, {"10.112.5.1": "lb2"}, "lb1", "10.112.5.1", "v1")[0] == []
    assert run(monkeypatch, {"v1": vpc}, {}, "lb1", "10.112.4.7", "v1")[0] == []
    assert run(monkeypatch, {}, {}, "lb1", "10.112.5.1", "v1")[0] == []
    assert run(monkeypatch, {"v1": vpc}, {}, "lb1", None, "v1")[0] == []  # never provisioned
    assert run(monkeypatch, {"v1": vpc}, {}, "lb1", "127.70.0.1", None)[0] == []  # internet: nothing in a VPC
