"""The emulator's SLB API through the real SDK (aliyunsdkslb request classes): creation and
its idempotency, intranet addresses in their VSwitch, filters and pages, listeners,
backends that must be ECI groups of the SLB's VPC, health, deletion."""
from __future__ import annotations

import json

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkslb.request.v20140515.AddBackendServersRequest import AddBackendServersRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerTCPListenerRequest import CreateLoadBalancerTCPListenerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerUDPListenerRequest import CreateLoadBalancerUDPListenerRequest
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerListenerRequest import DeleteLoadBalancerListenerRequest
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerRequest import DeleteLoadBalancerRequest
from aliyunsdkslb.request.v20140515.DescribeHealthStatusRequest import DescribeHealthStatusRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerAttributeRequest import DescribeLoadBalancerAttributeRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerListenersRequest import DescribeLoadBalancerListenersRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import DescribeLoadBalancersRequest
from aliyunsdkslb.request.v20140515.RemoveBackendServersRequest import RemoveBackendServersRequest
from aliyunsdkslb.request.v20140515.SetBackendServersRequest import SetBackendServersRequest
from aliyunsdkslb.request.v20140515.StartLoadBalancerListenerRequest import StartLoadBalancerListenerRequest
from aliyunsdkslb.request.v20140515.StopLoadBalancerListenerRequest import StopLoadBalancerListenerRequest

from operators.emulator.alibaba.slb import EciServers, SlbService
from operators.emulator.alibaba.slb_backends import MemoryLbBackend, lb_spec

from .emulatorkit import EmulatorThread, group_params, until


class StubVpcs:
    """The VPC API's directory, dict-backed: VPC a (a cluster's: key cluster-a) with a pod
    and a service VSwitch, VPC b (no cluster tag: its own id is its key)."""

    def __init__(self):
        self.keys = {"vpc-a": "cluster-a", "vpc-b": "vpc-b"}
        self.vswitches = {"vsw-pods": {"VpcId": "vpc-a", "CidrBlock": "10.8.0.0/24"},
                          "vsw-svc": {"VpcId": "vpc-a", "CidrBlock": "10.8.1.0/24"},
                          "vsw-b": {"VpcId": "vpc-b", "CidrBlock": "10.9.0.0/24"}}

    def local_key(self, vpc_id, account=None):
        return self.keys.get(vpc_id)

    def vswitch(self, vsw_id, account=None):
        return self.vswitches.get(vsw_id)


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


def error(call) -> ServerException:
    with pytest.raises(ServerException) as e:
        call()
    return e.value


def create(emu, **params) -> dict:
    return emu.call(CreateLoadBalancerRequest(), **params)


def group(emu, vswitch: str = "vsw-pods", name: str = "sk8s-web") -> tuple[str, str]:
    """A running ECI group in a VSwitch: (id, IntranetIp)."""
    gid = emu.call(CreateContainerGroupRequest(), **group_params(name, VSwitchId=vswitch))["ContainerGroupId"]
    found = until(lambda: [g for g in emu.call(DescribeContainerGroupsRequest())["ContainerGroups"]
                           if g["ContainerGroupId"] == gid and g["Status"] == "Running"])
    return gid, found[0]["IntranetIp"]


def servers(*pairs, weight=100) -> str:
    return json.dumps([{"ServerId": gid, "Type": "eci", "ServerIp": ip, "Weight": weight} for gid, ip in pairs])


def test_an_internet_lb_is_made_once_per_client_token_and_found_by_its_tags(emu):
    tags = {"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1", "Tag.2.Key": "sk8s.io/uid", "Tag.2.Value": "u1"}
    first = create(emu, ClientToken="sk8s-u1", LoadBalancerName="a-u1", **tags)
    again = create(emu, ClientToken="sk8s-u1", LoadBalancerName="a-u1", **tags)
    assert first["LoadBalancerId"] == again["LoadBalancerId"] and first["LoadBalancerId"].startswith("lb-")
    assert first["Address"].startswith("198.51.100.") and first["NetworkType"] == "classic"
    e = error(lambda: create(emu, ClientToken="sk8s-u1", LoadBalancerName="other", **tags))
    assert e.get_error_code() == "IdempotentParameterMismatch"
    create(emu, **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1", "Tag.2.Key": "sk8s.io/uid", "Tag.2.Value": "u2"})
    create(emu, **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h2"})
    by_uid = emu.call(DescribeLoadBalancersRequest(), **{"Tag.1.Key": "sk8s.io/uid", "Tag.1.Value": "u1"})
    assert [lb["LoadBalancerId"] for lb in by_uid["LoadBalancers"]["LoadBalancer"]] == [first["LoadBalancerId"]]
    lb = by_uid["LoadBalancers"]["LoadBalancer"][0]
    assert lb["AddressType"] == "internet" and lb["LoadBalancerStatus"] == "active"
    assert {"TagKey": "sk8s.io/uid", "TagValue": "u1"} in lb["Tags"]["Tag"]
    home = emu.call(DescribeLoadBalancersRequest(), Tags=json.dumps([{"tagKey": "sk8s.io/home", "tagValue": "h1"}]),
                    PageSize="1", PageNumber="2")
    assert home["TotalCount"] == 2 and home["PageNumber"] == 2 and len(home["LoadBalancers"]["LoadBalancer"]) == 1
    assert emu.call(DescribeLoadBalancersRequest(), PageNumber="3", PageSize="1",
                    Tags=json.dumps([{"TagKey": "sk8s.io/home", "TagValue": "h1"}]))["LoadBalancers"]["LoadBalancer"] == []
    assert len(emu.control("inventory")["LoadBalancer"]) == 3


def test_an_intranet_lb_takes_the_address_asked_for_in_its_vswitch(emu):
    lb = create(emu, AddressType="intranet", VSwitchId="vsw-svc", Address="10.8.1.10", VpcId="vpc-a")
    assert (lb["Address"], lb["VpcId"], lb["NetworkType"]) == ("10.8.1.10", "vpc-a", "vpc")
    assert emu.slb.lbs[lb["LoadBalancerId"]].local_key == "cluster-a"
    taken = error(lambda: create(emu, AddressType="intranet", VSwitchId="vsw-svc", Address="10.8.1.10"))
    assert taken.get_error_code() == "InvalidParam.Address"
    outside = error(lambda: create(emu, AddressType="intranet", VSwitchId="vsw-svc", Address="10.8.0.10"))
    assert outside.get_error_code() == "InvalidParameter" and "Address" in outside.get_error_msg()
    assert error(lambda: create(emu, AddressType="intranet")).get_error_code() == "MissingParameter"
    unknown = error(lambda: create(emu, AddressType="intranet", VSwitchId="vsw-nope"))
    assert (unknown.get_http_status(), unknown.get_error_code()) == (404, "InvalidVSwitchId.NotFound")
    wrong_vpc = error(lambda: create(emu, AddressType="intranet", VSwitchId="vsw-svc", VpcId="vpc-b"))
    assert wrong_vpc.get_error_code() == "InvalidParameter"
    auto = create(emu, AddressType="intranet", VSwitchId="vsw-svc")
    assert auto["Address"] == "10.8.1.1"
    by_vpc = emu.call(DescribeLoadBalancersRequest(), VpcId="vpc-a", AddressType="intranet")
    assert by_vpc["TotalCount"] == 2


def test_listeners_are_created_stopped_started_once_per_port_and_deleted(emu):
    lb_id = create(emu)["LoadBalancerId"]
    emu.call(CreateLoadBalancerTCPListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", BackendServerPort="8080",
             Bandwidth="-1", PersistenceTimeout="600", HealthCheckType="tcp", healthCheckInterval="2")
    again = error(lambda: emu.call(CreateLoadBalancerTCPListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80",
                                   BackendServerPort="9090"))
    assert again.get_error_code() == "ListenerAlreadyExists"
    emu.call(CreateLoadBalancerUDPListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", BackendServerPort="53")
    missing = error(lambda: emu.call(CreateLoadBalancerTCPListenerRequest(), LoadBalancerId=lb_id, ListenerPort="81"))
    assert missing.get_error_code() == "MissingParameter"

    def listeners():
        return {(x["ListenerProtocol"], x["ListenerPort"]): x for x in emu.call(
            DescribeLoadBalancerListenersRequest(), **{"LoadBalancerId.1": lb_id})["Listeners"]}
    assert {k: v["Status"] for k, v in listeners().items()} == {("tcp", 80): "stopped", ("udp", 80): "stopped"}
    assert listeners()[("tcp", 80)]["TCPListenerConfig"]["PersistenceTimeout"] == 600
    ambiguous = error(lambda: emu.call(StartLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80"))
    assert ambiguous.get_error_code() == "MissingParameter"
    emu.call(StartLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", ListenerProtocol="tcp")
    assert listeners()[("tcp", 80)]["Status"] == "running" and listeners()[("udp", 80)]["Status"] == "stopped"
    assert lb_spec(emu.slb.lbs[lb_id]).listeners[0].target_port == 8080
    assert lb_spec(emu.slb.lbs[lb_id]).affinity_seconds == 600
    emu.call(StopLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", ListenerProtocol="tcp")
    assert listeners()[("tcp", 80)]["Status"] == "stopped"
    emu.call(DeleteLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", ListenerProtocol="udp")
    gone = error(lambda: emu.call(DeleteLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80",
                                  ListenerProtocol="udp"))
    assert (gone.get_error_code(), gone.get_error_msg()) == ("InvalidParameter", "The specified resource does not exist.")
    attribute = emu.call(DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb_id)
    assert attribute["ListenerPortsAndProtocol"]["ListenerPortAndProtocol"] == [
        {"ListenerPort": 80, "ListenerProtocol": "tcp"}]


def test_backends_are_eci_groups_of_the_lbs_vpc_with_their_health(emu):
    lb_id = create(emu, AddressType="intranet", VSwitchId="vsw-svc", Address="10.8.1.5")["LoadBalancerId"]
    emu.call(CreateLoadBalancerTCPListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80", BackendServerPort="8080")
    emu.call(StartLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80")
    one, two = group(emu, name="sk8s-one"), group(emu, name="sk8s-two")
    elsewhere = group(emu, vswitch="vsw-b", name="sk8s-three")
    added = emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(one, two))
    assert [s["ServerId"] for s in added["BackendServers"]["BackendServer"]] == [one[0], two[0]]
    outside = error(lambda: emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(elsewhere)))
    assert outside.get_error_code() == "InvalidParameter" and "VPC" in outside.get_error_msg()
    wrong_ip = error(lambda: emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id,
                                      BackendServers=servers((one[0], "10.8.0.250"))))
    assert "ServerIp" in wrong_ip.get_error_msg()
    nobody = error(lambda: emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id,
                                    BackendServers=servers(("eci-nobody", "10.8.0.9"))))
    assert "does not exist" in nobody.get_error_msg()
    assert lb_spec(emu.slb.lbs[lb_id]).backends == sorted([one[1], two[1]])

    emu.lb_backend.unhealthy.add(two[1])
    health = emu.call(DescribeHealthStatusRequest(), LoadBalancerId=lb_id)["BackendServers"]["BackendServer"]
    assert {(h["ServerId"], h["Port"], h["ServerHealthStatus"]) for h in health} == {
        (one[0], 8080, "normal"), (two[0], 8080, "abnormal")}
    emu.call(SetBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(two, weight=0))
    assert lb_spec(emu.slb.lbs[lb_id]).backends == [one[1]]
    emu.call(RemoveBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(one))
    attribute = emu.call(DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb_id)
    assert attribute["BackendServers"]["BackendServer"] == [
        {"ServerId": two[0], "Type": "eci", "ServerIp": two[1], "Weight": 0, "Description": ""}]
    emu.call(StopLoadBalancerListenerRequest(), LoadBalancerId=lb_id, ListenerPort="80")
    health = emu.call(DescribeHealthStatusRequest(), LoadBalancerId=lb_id)["BackendServers"]["BackendServer"]
    assert [h["ServerHealthStatus"] for h in health] == ["unavailable"]


def test_an_internet_lbs_backends_name_its_vpc_and_must_share_one(emu):
    lb_id = create(emu)["LoadBalancerId"]
    a, b = group(emu, name="sk8s-a"), group(emu, vswitch="vsw-b", name="sk8s-b")
    emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(a))
    assert emu.slb.lbs[lb_id].local_key == "cluster-a"
    mixed = error(lambda: emu.call(AddBackendServersRequest(), LoadBalancerId=lb_id, BackendServers=servers(b)))
    assert "one VPC" in mixed.get_error_msg()
    assert [s.server_id for s in emu.slb.lbs[lb_id].servers.values()] == [a[0]]


def test_deleting_an_lb_forgets_it_and_unknown_ids_are_not_found(emu):
    lb_id = create(emu)["LoadBalancerId"]
    emu.call(DeleteLoadBalancerRequest(), LoadBalancerId=lb_id)
    for request in (DeleteLoadBalancerRequest(), DescribeLoadBalancerAttributeRequest(), DescribeHealthStatusRequest()):
        e = error(lambda: emu.call(request, LoadBalancerId=lb_id))
        assert (e.get_http_status(), e.get_error_code()) == (404, "InvalidLoadBalancerId.NotFound")
    assert emu.control("inventory")["LoadBalancer"] == [] and emu.lb_backend.served == {}


def test_the_vpc_api_is_the_directory_intranet_lbs_are_placed_by():
    from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
    from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest

    from operators.emulator.alibaba.vpc import MemoryVpcs, VpcService
    vpcs = VpcService(MemoryVpcs(), settle=0)
    slb = SlbService(vpcs, EciServers(None), MemoryLbBackend())
    emu = EmulatorThread(services=(vpcs, slb))
    try:
        vpc_id = emu.call(CreateVpcRequest(), CidrBlock="10.20.0.0/23", **{
            "Tag.1.Key": "sk8s.io/cluster-uid", "Tag.1.Value": "cluster-z"})["VpcId"]
        vsw_id = until(lambda: _vswitch(emu, CreateVSwitchRequest, vpc_id))
        lb = create(emu, AddressType="intranet", VSwitchId=vsw_id, Address="10.20.1.10")
        assert lb["VpcId"] == vpc_id and slb.lbs[lb["LoadBalancerId"]].local_key == "cluster-z"
    finally:
        emu.stop()


def _vswitch(emu, request, vpc_id):
    try:
        return emu.call(request(), VpcId=vpc_id, ZoneId="cn-hangzhou-h", CidrBlock="10.20.1.0/24")["VSwitchId"]
    except ServerException as e:
        assert e.get_error_code() == "IncorrectVpcStatus"  # the VPC is still Pending
        return None
