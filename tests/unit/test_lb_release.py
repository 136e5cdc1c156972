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
    async def drop_tables(names, ns=None):
        dropped.append((ns, tuple(names)))
    dropped: list = []
    monkeypatch.setattr(loadbalancer.netns, "ip", ip)
    monkeypatch.setattr(loadbalancer.nft, "drop_tables", drop_tables)
    lbs = LocalLoadBalancers(Vpcs(existing), "h")
    lbs.reserved = dict(reserved)
    asyncio.run(lbs.delete(*args))
    run.dropped = dropped
    return calls, lbs.reserved


def test_its_kernel_rules_go_too_on_the_host_and_in_its_vpc_anchor(monkeypatch):
    vpc = Vpc("v1", "net", LAYOUT, "10.112.4.1", "/run/netns/anchor")
    run(monkeypatch, {"v1": vpc}, {}, "lb1", "10.112.5.1", "v1")
    table = LocalLoadBalancers(Vpcs({}), "h").table_prefix + "lb1"
    assert table.startswith("sk8s-lb-h-")
    assert run.dropped == [(None, (table,)), ("/run/netns/anchor", (table,))]
    run(monkeypatch, {}, {}, "lb1", "10.112.5.1", "v1")  # the VPC gone: the host's only
    assert run.dropped == [(None, (table,))]


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


def test_the_fast_path_takes_only_new_backends_of_an_lb_served_in_the_kernel(monkeypatch):
    """`follow` (fed by a watch, ahead of the update handler) rewrites the rules for new
    backends; any other change (here: the VPC, a listener) is left to `ensure`."""
    import ipaddress as ipa

    from operators.providers.local.loadbalancer import _LB
    from operators.providers.services import LBListener, LBSpec
    applied = []

    async def apply(text, ns=None):
        applied.append(text)
        return 0, ""
    monkeypatch.setattr(loadbalancer.nft, "apply", apply)
    lbs = LocalLoadBalancers(Vpcs({}), "h")
    http = LBListener("TCP", 80, 8080)
    spec = LBSpec("lb1", "internet", "v1", [http], ["10.112.4.5"])
    lb = lbs.lbs["lb1"] = _LB(spec, "127.70.0.1", None, ipa.ip_network("10.112.4.0/24"), "10.112.4.1")
    lb.table = "sk8s-lb-h-o-lb1"

    def follow(**changes):
        fields = {"id": "lb1", "address_type": "internet", "vpc_id": "v1", "listeners": [http],
                  "backends": ["10.112.4.5"], **changes}
        return asyncio.run(lbs.follow(LBSpec(**fields)))
    assert follow(backends=["10.112.4.5", "10.112.4.6", "10.112.9.9"])
    assert "dnat to 10.112.4.5:8080" in applied[-1] and "dnat to 10.112.4.6:8080" in applied[-1]
    assert "10.112.9.9" not in applied[-1] and lb.refused == ["10.112.9.9"]  # outside its VPC: never
    assert not follow(vpc_id="v2", backends=["10.112.4.7"])
    assert not follow(listeners=[http, LBListener("TCP", 81, 81)], backends=["10.112.4.7"])
    assert len(applied) == 1 and lb.spec.vpc_id == "v1"
    # Out of order (a watch event and the handler's run): older backends never replace newer.
    assert follow(backends=["10.112.4.8"], version=10) and "10.112.4.8:8080" in applied[-1]
    assert follow(backends=["10.112.4.9"], version=9) and lb.spec.backends == ["10.112.4.8"]
    assert len(applied) == 2
    lb.table = None  # served by the proxy: ensure's job
    assert not follow(backends=["10.112.4.7"])
