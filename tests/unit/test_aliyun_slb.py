"""The aliyun load balancers: the pure SLB builders and diffs, and the provider through the
real SDK against the emulator's SLB and ECI APIs (memory backends): an intranet SLB on
its ClusterIP in the cluster's service VSwitch with ECI backends, listeners and backends
diffed, health, orphans swept, deletion idempotent, and convergence after a lost answer
and under throttling."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest

from operators.emulator.alibaba.slb import EciServers, SlbService
from operators.emulator.alibaba.slb_backends import MemoryLbBackend, lb_spec
from operators.providers.aliyun import slb_spec as s
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.slb import AliyunLoadBalancers
from operators.providers.errors import ProviderError
from operators.providers.services import LBListener, LBSpec

from .emulatorkit import AK, REGION, SK, EmulatorThread, group_params, until
from .test_emulator_slb import StubVpcs

HOME, CLUSTER = "home-1", "cluster-a"
UID = "11111111-2222-4333-8444-555555555555"
NETWORK = SimpleNamespace(vpc_id="vpc-a", pod_vswitch_id="vsw-pods", service_vswitch_id="vsw-svc",
                          security_group_id="sg-1", cidr="10.8.0.0/23")
HTTP, DNS = LBListener("TCP", 80, 8080), LBListener("UDP", 53, 5353)


def spec(backends=(), listeners=(HTTP,), **kw) -> LBSpec:
    return LBSpec(kw.pop("id", UID), kw.pop("address_type", "intranet"), kw.pop("vpc_id", CLUSTER), list(listeners),
                  list(backends), **kw)


# -- pure -----------------------------------------------------------------------------------

def test_create_params_tag_the_lb_and_a_token_follows_the_parameters():
    p = s.create_params(spec(load_balancer_ip="10.8.1.10"), HOME, vswitch_id="vsw-svc", vpc_id="vpc-a",
                        address="10.8.1.10")
    assert (p["AddressType"], p["VSwitchId"], p["VpcId"], p["Address"]) == ("intranet", "vsw-svc", "vpc-a", "10.8.1.10")
    assert [p[f"Tag.{i}.Key"] for i in (1, 2, 3)] == ["sk8s.io/home", "sk8s.io/cluster-uid", "sk8s.io/uid"]
    assert p["Tag.3.Value"] == UID and p["ClientToken"].startswith(f"sk8s-{UID}-") and len(p["ClientToken"]) <= 64
    other = s.create_params(spec(), HOME, vswitch_id="vsw-svc", vpc_id="vpc-a", address="10.8.1.11")
    assert other["ClientToken"] != p["ClientToken"]
    internet = s.create_params(spec(address_type="internet"), HOME, vswitch_id=None, vpc_id=None, address=None)
    assert "VSwitchId" not in internet and "Address" not in internet and internet["Tag.1.Value"] == HOME


def test_listener_params_carry_health_checks_and_persistence_within_the_clouds_limit():
    tcp = s.listener_params("lb-1", HTTP, spec(affinity_seconds=10800))
    assert (tcp["ListenerPort"], tcp["BackendServerPort"], tcp["HealthCheckType"]) == ("80", "8080", "tcp")
    assert tcp["PersistenceTimeout"] == "3600"
    udp = s.listener_params("lb-1", DNS, spec(affinity_seconds=60))
    assert udp["HealthCheckSwitch"] == "on" and "PersistenceTimeout" not in udp


def test_listener_plan_recreates_what_changed_starts_what_is_stopped_deletes_the_rest():
    rows = [{"ListenerProtocol": "tcp", "ListenerPort": 80, "BackendServerPort": 8080, "Status": "stopped",
             "TCPListenerConfig": {"PersistenceTimeout": 0}},
            {"ListenerProtocol": "udp", "ListenerPort": 53, "BackendServerPort": 53, "Status": "running"},
            {"ListenerProtocol": "tcp", "ListenerPort": 443, "BackendServerPort": 8443, "Status": "running"}]
    plan = s.plan_listeners(rows, spec(listeners=(HTTP, DNS)))
    assert plan.delete == [("udp", 53), ("tcp", 443)] and plan.create == [DNS]
    assert plan.start == [("tcp", 80), ("udp", 53)]
    sticky = s.plan_listeners(rows[:1], spec(listeners=(HTTP,), affinity_seconds=30))
    assert sticky.delete == [("tcp", 80)] and sticky.create == [HTTP]


def test_backends_without_a_group_or_on_other_ports_are_left_out_with_the_reason():
    groups = {"10.8.0.2": "eci-a", "10.8.0.3": "eci-b"}
    odd = spec(backends=["10.8.0.2", "10.8.0.3", "10.8.0.9"], listeners=(HTTP,),
               backend_ports={"10.8.0.3": [("TCP", 80, 9090)]})
    servers, refused = s.wanted_servers(odd, groups)
    assert servers == [{"ServerId": "eci-a", "Type": "eci", "ServerIp": "10.8.0.2", "Weight": 100}]
    assert "no ECI container group" in refused["10.8.0.9"] and "TCP/80" in refused["10.8.0.3"]
    plan = s.plan_servers([{"ServerId": "eci-old", "ServerIp": "10.8.0.7", "Type": "eci", "Weight": 100},
                           {"ServerId": "eci-a", "ServerIp": "10.8.0.2", "Type": "eci", "Weight": 0}], servers)
    assert [x["ServerId"] for x in plan.remove] == ["eci-old"] and plan.add == [] and plan.set == servers
    assert [len(json.loads(c)) for c in s.chunks([{"ServerId": str(i)} for i in range(45)])] == [20, 20, 5]


def test_state_counts_healthy_backends_per_listener_and_reports_the_left_out():
    rows = [{"ServerIp": "10.8.0.2", "Port": 8080, "ListenerPort": 80, "Protocol": "tcp", "ServerHealthStatus": "normal"},
            {"ServerIp": "10.8.0.3", "Port": 8080, "ListenerPort": 80, "Protocol": "tcp",
             "ServerHealthStatus": "abnormal"}]
    state = s.state_from("10.8.1.10", spec(), rows, {"10.8.0.9": "no ECI container group of the cluster"})
    assert state.listeners == [(HTTP, 1)]
    assert [(b.ip, b.healthy) for b in state.backends] == [("10.8.0.2", True), ("10.8.0.3", False), ("10.8.0.9", False)]


# -- through the SDK ------------------------------------------------------------------------

@pytest.fixture
def emu():
    servers = EciServers(None)
    backend = MemoryLbBackend()
    slb = SlbService(StubVpcs(), servers, backend)
    e = EmulatorThread(services=(slb,))
    servers.eci = e.eci
    e.slb, e.lb_backend = slb, backend
    yield e
    e.stop()


async def _network(client, home, cluster):
    return NETWORK if cluster == CLUSTER else None


def lbs_for(emu, attempts: int = 8) -> AliyunLoadBalancers:
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}", attempts=attempts)
    return AliyunLoadBalancers(client, HOME, find_network=_network, health_interval=0.05)


def pod(emu, name: str, cluster: str = CLUSTER) -> str:
    """A running ECI group of the cluster, as the aliyun provider tags it: its address."""
    gid = emu.call(CreateContainerGroupRequest(), **group_params(name, VSwitchId="vsw-pods", **{
        "Tag.1.Key": "sk8s.io/home", "Tag.1.Value": HOME, "Tag.2.Key": "sk8s.io/cluster-uid",
        "Tag.2.Value": cluster}))["ContainerGroupId"]
    return until(lambda: [g["IntranetIp"] for g in emu.call(DescribeContainerGroupsRequest())["ContainerGroups"]
                          if g["ContainerGroupId"] == gid and g["Status"] == "Running"])[0]


def the_lb(emu):
    (lb,) = emu.slb.lbs.values()
    return lb


def test_an_intranet_lb_is_made_on_its_cluster_ip_with_eci_backends_and_kept_in_step(emu):
    a, b = pod(emu, "sk8s-a"), pod(emu, "sk8s-b")
    lbs = lbs_for(emu)

    async def run():
        state = await lbs.ensure(spec([a, b], load_balancer_ip="10.8.1.10"), None)
        assert state.address == "10.8.1.10" and state.listeners == [(HTTP, 2)]
        lb = the_lb(emu)
        assert (lb.vswitch_id, lb.vpc_id, lb.address_type) == ("vsw-svc", "vpc-a", "intranet")
        assert lb_spec(lb).listeners == [HTTP] and lb_spec(lb).backends == sorted([a, b])
        assert {srv.type for srv in lb.servers.values()} == {"eci"}
        # Another port, one backend gone, one unhealthy: only the changes are sent.
        emu.control("calls", method="DELETE")
        emu.lb_backend.unhealthy.add(a)
        state = await lbs.ensure(spec([a], listeners=(DNS,), load_balancer_ip="10.8.1.10"), "10.8.1.10")
        assert lb_spec(the_lb(emu)).listeners == [DNS] and lb_spec(the_lb(emu)).backends == [a]
        assert state.listeners == [(DNS, 0)] and [(x.ip, x.healthy) for x in state.backends] == [(a, False)]
        calls = emu.control("calls")["calls"]
        assert "CreateLoadBalancer" not in calls and calls["RemoveBackendServers"] == 1
        # Health recovers: the poll sees it and says so.
        changed = []
        lbs.on_health_change = changed.append
        emu.lb_backend.unhealthy.clear()
        # A poll already under way when the backend recovered may report an earlier change first.
        for _ in range(100):
            if changed and lbs.state(UID).listeners == [(DNS, 1)]:
                break
            await asyncio.sleep(0.05)
        assert set(changed) == {UID} and lbs.state(UID).listeners == [(DNS, 1)]
        await lbs.delete(UID, "10.8.1.10", CLUSTER)
        await lbs.delete(UID, "10.8.1.10", CLUSTER)  # idempotent
        assert emu.slb.lbs == {} and lbs.state(UID) is None
        await lbs.close()
    asyncio.run(run())


def test_a_new_cluster_ip_makes_the_lb_anew_and_an_internet_lb_cannot_choose_one(emu):
    lbs = lbs_for(emu)

    async def run():
        await lbs.ensure(spec(load_balancer_ip="10.8.1.10"), None)
        first = the_lb(emu).id
        state = await lbs.ensure(spec(load_balancer_ip="10.8.1.20"), "10.8.1.10")
        assert state.address == "10.8.1.20" and the_lb(emu).id != first
        other = spec(id="99999999-2222-4333-8444-555555555555", address_type="internet")
        state = await lbs.ensure(other, None)
        assert state.address.startswith("198.51.100.")
        other.load_balancer_ip = "203.0.113.7"
        with pytest.raises(ProviderError) as e:
            await lbs.ensure(other, state.address)
        assert e.value.reason == "AddressUnavailable" and "spec.loadBalancerIP" in str(e.value)
        fresh = spec(id="77777777-2222-4333-8444-555555555555", address_type="internet", load_balancer_ip="203.0.113.7")
        with pytest.raises(ProviderError) as e:
            await lbs.ensure(fresh, None)
        assert e.value.reason == "AddressUnavailable" and len(emu.slb.lbs) == 2  # nothing made
        await lbs.close()
    asyncio.run(run())


def test_the_api_server_and_a_cluster_without_network_are_refused_with_reasons(emu):
    lbs = lbs_for(emu)

    async def run():
        with pytest.raises(ProviderError) as e:
            await lbs.ensure(spec(api_server=("127.0.0.1", 6443)), None)
        assert e.value.reason == "NotSupported" and not e.value.retryable
        with pytest.raises(ProviderError) as e:
            await lbs.ensure(spec(vpc_id="cluster-unknown"), None)
        assert e.value.reason == "NetworkNotReady" and e.value.retryable
        await lbs.close()
    asyncio.run(run())
    assert emu.slb.lbs == {}


def test_setup_deletes_the_installations_lbs_no_service_lb_records(emu):
    lbs = lbs_for(emu)
    kept, orphan = UID, "99999999-2222-4333-8444-555555555555"

    async def run():
        await lbs.ensure(spec(), None)
        await lbs.ensure(spec(id=orphan, load_balancer_ip="10.8.1.30"), None)
        foreign = AliyunLoadBalancers(lbs.client, "another-home", find_network=_network)
        await foreign.ensure(spec(id=orphan, load_balancer_ip="10.8.1.40"), None)
        await lbs_for(emu).setup({kept: "10.8.1.1"})
        left = sorted((lb.address, lb.tags[0]["Value"]) for lb in emu.slb.lbs.values())
        assert left == [("10.8.1.1", HOME), ("10.8.1.40", "another-home")]
        await lbs.close()
    asyncio.run(run())


def test_one_lb_after_lost_answers_and_throttling(emu, monkeypatch):
    monkeypatch.setattr("operators.providers.aliyun.client.backoff", lambda attempt: 0.01)  # the waits, not their length
    a = pod(emu, "sk8s-a")
    lbs = lbs_for(emu, attempts=30)

    async def run():
        # Every answer lost: the create is applied on each of the client's three tries.
        emu.control("faults", {"drop_rate": 1.0})
        with pytest.raises(ProviderError):
            await lbs_for(emu, attempts=3).ensure(spec([a], load_balancer_ip="10.8.1.10"), None)
        assert emu.control("calls")["calls"]["DescribeLoadBalancers"] == 3 and len(emu.slb.lbs) == 0
        emu.control("faults", {"drop_rate": 0.0})
        await lbs_for(emu)._create(spec([a], load_balancer_ip="10.8.1.10"), None)
        emu.control("faults", {"drop_rate": 1.0})
        with pytest.raises(ProviderError):
            await lbs_for(emu, attempts=3)._create(spec([a], load_balancer_ip="10.8.1.10"), None)
        assert emu.control("calls")["calls"]["CreateLoadBalancer"] == 4 and len(emu.slb.lbs) == 1
        emu.control("faults", {"drop_rate": 0.3, "throttle_rate": 0.3, "seed": 7})
        for _ in range(3):  # a run killed mid-way: the next converges
            try:
                await lbs.ensure(spec([a], listeners=(HTTP, DNS), load_balancer_ip="10.8.1.10"), None)
            except ProviderError:
                continue
        emu.control("faults", {"drop_rate": 0, "throttle_rate": 0})
        state = await lbs.ensure(spec([a], listeners=(HTTP, DNS), load_balancer_ip="10.8.1.10"), None)
        assert state.address == "10.8.1.10"
        injected = emu.control("calls")["faults"]
        assert injected.get("Dropped") and injected.get("Throttling.User")
        await lbs.close()
    asyncio.run(run())
    lb = the_lb(emu)
    assert sorted(lb.listeners) == [("tcp", 80), ("udp", 53)] and lb_spec(lb).backends == [a]
    assert all(lst.status == "running" for lst in lb.listeners.values())


def test_setup_with_the_cloud_out_of_reach_is_not_fatal():
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint="127.0.0.1:9", attempts=1)
    lbs = AliyunLoadBalancers(client, HOME, find_network=_network)

    async def run():
        await lbs.setup({})  # logged, not raised
        with pytest.raises(ProviderError):
            await lbs.ensure(spec(), None)
        await lbs.close()
    asyncio.run(run())
