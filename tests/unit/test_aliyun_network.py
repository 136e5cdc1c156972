"""The aliyun provider's tenant networks: the pure request builders, and find / ensure /
delete / list against the emulator through the real SDK, idempotent, converging under
throttling, server errors and lost answers with nothing made twice; a cluster's sandboxes
placed in its pod VSwitch and security group."""
from __future__ import annotations

import asyncio
import json

import pytest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest

from operators.emulator.alibaba.faults import FaultConfig
from operators.providers.aliyun import network
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.eci_spec import EciPlacement
from operators.providers.aliyun.network import (CloudNetwork, cluster_of, delete_network, ensure_network,
                                                find_network, list_networks, network_from, security_group_params,
                                                tag_params, vpc_params, vswitch_params)
from operators.providers.aliyun.provider import AliyunProvider
from operators.providers.errors import ProviderError
from operators.providers.local.vpc import VpcLayout

from .emulatorkit import AK, REGION, SK, until
from .netkit import NetworkEmulator
from .test_aliyun_provider import SPEC, ref

UID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
CIDR = "10.112.4.0/23"
ZONE = "cn-hangzhou-h"
EMPTY = {"ContainerGroup": [], "Vpc": [], "VSwitch": [], "SecurityGroup": []}


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(network, "POLL", 0.02)


@pytest.fixture
def emu():
    e = NetworkEmulator()
    yield e
    e.stop()


def client_for(emu: NetworkEmulator) -> AliyunClient:
    return AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}")


def counts(emu: NetworkEmulator) -> tuple[int, int, int]:
    inv = emu.control("inventory")
    return len(inv["Vpc"]), len(inv["VSwitch"]), len(inv["SecurityGroup"])


# -- builders ------------------------------------------------------------------------------

def test_builders_spell_the_clouds_parameters():
    tags = {"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1", "Tag.2.Key": "sk8s.io/cluster-uid", "Tag.2.Value": UID}
    assert tag_params("h1", UID) == tags
    assert tag_params("h1") == {"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1"}
    assert vpc_params("h1", UID, CIDR) == {"CidrBlock": CIDR, "VpcName": f"sk8s-{UID}", "ClientToken": f"sk8s-{UID}",
                                           "Description": "sk8s tenant cluster VPC", **tags}
    pods = vswitch_params("h1", UID, "vpc-1", ZONE, CIDR, "pods")
    services = vswitch_params("h1", UID, "vpc-1", ZONE, CIDR, "services")
    assert (pods["CidrBlock"], services["CidrBlock"]) == ("10.112.4.0/24", "10.112.5.0/24")
    assert (pods["ClientToken"], services["ClientToken"]) == (f"sk8s-{UID}-pods", f"sk8s-{UID}-services")
    assert pods["VpcId"] == "vpc-1" and pods["ZoneId"] == ZONE and pods["Tag.2.Value"] == UID
    sg = security_group_params("h1", UID, "vpc-1")
    assert sg["VpcId"] == "vpc-1" and sg["ClientToken"] == f"sk8s-{UID}-sg" and sg["SecurityGroupType"] == "normal"
    for params in (vpc_params("h1", UID, CIDR), pods, services, sg):
        assert len(params["ClientToken"]) <= 64 and params["ClientToken"].isascii()
    # A value the cloud reserves travels escaped, and reads back as itself.
    assert tag_params("aliyun-home")["Tag.1.Value"] != "aliyun-home"
    assert cluster_of([{"Key": "sk8s.io/cluster-uid", "Value": tag_params("h", "aliyun-c")["Tag.2.Value"]}]) == "aliyun-c"
    assert cluster_of([{"TagKey": "sk8s.io/cluster-uid", "TagValue": UID}]) == UID
    assert cluster_of([{"Key": "other", "Value": "x"}]) is None


def test_network_from_tells_the_vswitches_apart_by_their_halves():
    vpc = {"VpcId": "vpc-1", "CidrBlock": CIDR}
    switches = [{"VpcId": "vpc-1", "VSwitchId": "vsw-s", "CidrBlock": "10.112.5.0/24"},
                {"VpcId": "vpc-2", "VSwitchId": "vsw-x", "CidrBlock": "10.112.4.0/24"},
                {"VpcId": "vpc-1", "VSwitchId": "vsw-p", "CidrBlock": "10.112.4.0/24"}]
    net = network_from(vpc, switches, [{"VpcId": "vpc-1", "SecurityGroupId": "sg-1"}])
    assert net == CloudNetwork("vpc-1", "vsw-p", "vsw-s", "sg-1", CIDR) and net.complete
    assert net.resolver == VpcLayout(__import__("ipaddress").ip_network(CIDR)).resolver == "10.112.5.254"
    assert not network_from(vpc, switches[:1], []).complete


# -- against the emulator --------------------------------------------------------------------

async def test_ensure_makes_once_find_lists_and_delete_removes_everything(emu):
    client = client_for(emu)
    assert await find_network(client, "h1", UID) is None
    net = await ensure_network(client, "h1", UID, CIDR, zone_id=ZONE)
    assert net.complete and net.cidr == CIDR
    assert await ensure_network(client, "h1", UID, CIDR, zone_id=ZONE) == net  # found, nothing new
    assert await find_network(client, "h1", UID) == net
    assert counts(emu) == (1, 2, 1)
    switches = {v["VSwitchId"]: v for v in emu.control("inventory")["VSwitch"]}
    assert switches[net.pod_vswitch_id]["CidrBlock"] == "10.112.4.0/24"
    assert switches[net.service_vswitch_id]["CidrBlock"] == "10.112.5.0/24"
    assert emu.networks.networks == {UID: CIDR}  # the local network is keyed by the cluster
    other = await ensure_network(client, "h1", "c-2", "10.112.6.0/23", zone_id=ZONE)
    await ensure_network(client, "h2", "c-3", "10.112.8.0/23", zone_id=ZONE)  # another installation's
    assert await list_networks(client, "h1") == {UID: net, "c-2": other}
    await delete_network(client, "h1", UID)
    await delete_network(client, "h1", UID)  # idempotent
    assert await find_network(client, "h1", UID) is None
    assert counts(emu) == (2, 4, 2)
    await asyncio.to_thread(until, lambda: UID in emu.networks.released)


async def test_ensure_refuses_a_vpc_with_another_range_and_needs_a_zone(emu):
    client = client_for(emu)
    await ensure_network(client, "h1", UID, CIDR, zone_id=ZONE)
    with pytest.raises(ProviderError) as e:
        await ensure_network(client, "h1", UID, "10.112.6.0/23", zone_id=ZONE)
    assert e.value.reason == "VpcMismatch" and not e.value.retryable
    with pytest.raises(ProviderError) as e:
        await ensure_network(client, "h1", "c-2", CIDR, zone_id=None)
    assert e.value.reason == "MissingConfiguration"
    assert counts(emu) == (1, 2, 1)


async def persist(action, tries: int = 40):
    """What a controller does: try again while the error says it may pass."""
    for _ in range(tries):
        try:
            return await action()
        except ProviderError as err:
            if not err.retryable:
                raise
            await asyncio.sleep(0.02)
    raise AssertionError("did not converge")


async def test_under_faults_ensure_and_delete_converge_with_nothing_made_twice(emu):
    client = client_for(emu)
    emu.control("faults", {"throttle_rate": 0.25, "error_rate": 0.15, "drop_rate": 0.2, "seed": 11})
    nets = [await persist(lambda: ensure_network(client, "h1", UID, CIDR, zone_id=ZONE)) for _ in range(2)]
    assert nets[0] == nets[1] and nets[0].complete
    assert counts(emu) == (1, 2, 1)
    injected = emu.control("calls")["faults"]
    assert sum(injected.values()) > 0  # the faults did happen
    await persist(lambda: delete_network(client, "h1", UID))
    emu.control("faults", {"throttle_rate": 0.0, "error_rate": 0.0, "drop_rate": 0.0})
    assert emu.control("inventory") == EMPTY


# -- the provider ------------------------------------------------------------------------------

def provider_for(emu: NetworkEmulator) -> AliyunProvider:
    placement = EciPlacement(region_id=REGION, zone_id=ZONE, vswitch_id="vsw-sk8s-local",
                             security_group_id="sg-sk8s-local", cluster_uid="", home_id="h1")
    return AliyunProvider(client_for(emu), placement, busy_interval=0.05, idle_interval=0.2)


async def test_a_clusters_sandboxes_go_into_its_network_and_release_waits_for_them(emu):
    provider = provider_for(emu)
    labels = {"sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": UID}
    with pytest.raises(ProviderError) as e:  # no network yet: tried again later, nothing made
        await provider.ensure(ref(1), SPEC, labels)
    assert e.value.reason == "NetworkNotReady" and e.value.retryable
    assert emu.control("inventory")["ContainerGroup"] == []
    resolver = await provider.ensure_cluster_network(UID, CIDR)
    assert resolver == "10.112.5.254"
    net = await find_network(provider.client, "h1", UID)
    await provider.ensure(ref(1), SPEC, labels)
    await provider.ensure(ref(2), SPEC, {})  # no cluster: the operator-wide placement
    described = {g["ContainerGroupName"]: g for g in (await provider.client.call(
        DescribeContainerGroupsRequest, {"RegionId": REGION}))["ContainerGroups"]}
    mine, admins = described[ref(1).instance_name], described[ref(2).instance_name]
    assert (mine["VSwitchId"], mine["SecurityGroupId"], mine["VpcId"]) == (
        net.pod_vswitch_id, net.security_group_id, net.vpc_id)
    assert (admins["VSwitchId"], admins["SecurityGroupId"]) == ("vsw-sk8s-local", "sg-sk8s-local")
    with pytest.raises(ProviderError) as e:  # the group still uses the security group
        await provider.release_cluster(UID)
    assert e.value.reason == "DependencyViolation" and e.value.retryable
    await provider.delete(ref(1), 0)
    await provider.delete(ref(2), 0)
    await provider.release_cluster(UID)
    await provider.release_cluster(UID)
    assert emu.control("inventory") == EMPTY
    assert json.dumps(await list_networks(provider.client, "h1"), default=str) == "{}"


async def test_a_stale_cached_network_is_looked_up_again_after_the_cloud_refuses_its_ids(emu):
    provider = provider_for(emu)
    labels = {"sk8s.io/cluster-uid": UID}
    await provider.ensure_cluster_network(UID, CIDR)
    real = await find_network(provider.client, "h1", UID)
    ghost = CloudNetwork("vpc-" + "a" * 21, "vsw-" + "b" * 21, "vsw-" + "c" * 21, "sg-" + "d" * 21, CIDR)
    provider.networks.remember(UID, ghost)  # what another process's deletion and re-creation leaves behind
    with pytest.raises(ProviderError) as e:
        await provider.ensure(ref(3), SPEC, labels)
    assert e.value.reason == "InvalidVSwitchId" and e.value.retryable
    await provider.ensure(ref(3), SPEC, labels)  # looked up again: the cloud's current network
    [group] = emu.control("inventory")["ContainerGroup"]
    described = (await provider.client.call(DescribeContainerGroupsRequest, {"RegionId": REGION}))["ContainerGroups"]
    assert described[0]["VSwitchId"] == real.pod_vswitch_id and group["ContainerGroupName"] == ref(3).instance_name
