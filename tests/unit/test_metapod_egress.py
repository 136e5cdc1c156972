"""A metapod tenant's apiserver may dial its own sandbox Pods' addresses, nothing else."""
from __future__ import annotations

import asyncio
import ipaddress

from operators.providers.metapod.egress import TTL, pod_networks
from operators.virtualnode.egress.policy import decide
from operators.virtualnode.egress.ranges import VpcPolicy

KUBELET = ("127.0.0.1", 10250)


def pod(ip: str, phase: str = "Running") -> dict:
    return {"status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


def test_each_live_pod_is_one_host_route():
    nets = pod_networks([pod("10.244.1.5"), pod("10.244.2.7"), pod("10.244.1.9", "Succeeded"),
                         pod("fd00::1"), {"status": {"phase": "Pending"}}, pod("not-an-ip")])
    assert nets == (ipaddress.IPv4Network("10.244.1.5/32"), ipaddress.IPv4Network("10.244.2.7/32"))


def test_the_policy_allows_exactly_the_pods_and_asks_again_after_the_ttl():
    answers = [(ipaddress.IPv4Network("10.244.1.5/32"),), ()]
    calls = []

    async def find(uid):
        calls.append(uid)
        return answers[min(len(calls), len(answers)) - 1]
    find.ttl = TTL
    now = [0.0]
    policy = VpcPolicy(find, "uid-1", KUBELET, clock=lambda: now[0])

    async def run():
        p = await policy()
        assert decide("10.244.1.5", 443, p).allowed
        assert not decide("10.244.1.6", 443, p).allowed       # another tenant's Pod next door
        assert not decide("10.96.0.1", 443, p).allowed        # the meta-cluster's apiserver
        assert decide("127.0.0.1", 10250, p).allowed          # its own kubelet endpoint
        now[0] += TTL - 0.1
        await policy()
        assert calls == ["uid-1"]
        now[0] += 0.2
        p = await policy()
        assert calls == ["uid-1", "uid-1"] and not decide("10.244.1.5", 443, p).allowed
    asyncio.run(run())
