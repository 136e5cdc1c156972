"""Accounts in the emulator, through the real SDK on server.build's whole cloud: account B's
keys neither see nor touch account A's container groups, VPCs, VSwitches, security groups,
SLBs or private zones, by id or by listing (another account's id is answered exactly as an
unknown id is); ClientTokens are per account; the inventory names each resource's account;
a key already known is refused."""
from __future__ import annotations

import json
import urllib.error

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.AuthorizeSecurityGroupRequest import AuthorizeSecurityGroupRequest
from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteSecurityGroupRequest import DeleteSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest
from aliyunsdkeci.request.v20180808.ExecContainerCommandRequest import ExecContainerCommandRequest
from aliyunsdkeci.request.v20180808.UpdateContainerGroupRequest import UpdateContainerGroupRequest
from aliyunsdkpvtz.request.v20180101.AddZoneRecordRequest import AddZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.AddZoneRequest import AddZoneRequest
from aliyunsdkpvtz.request.v20180101.BindZoneVpcRequest import BindZoneVpcRequest
from aliyunsdkpvtz.request.v20180101.DeleteZoneRecordRequest import DeleteZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.DeleteZoneRequest import DeleteZoneRequest
from aliyunsdkpvtz.request.v20180101.DescribeZoneInfoRequest import DescribeZoneInfoRequest
from aliyunsdkpvtz.request.v20180101.DescribeZoneRecordsRequest import DescribeZoneRecordsRequest
from aliyunsdkpvtz.request.v20180101.DescribeZonesRequest import DescribeZonesRequest
from aliyunsdkpvtz.request.v20180101.UpdateZoneRecordRequest import UpdateZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.UpdateZoneRemarkRequest import UpdateZoneRemarkRequest
from aliyunsdkslb.request.v20140515.AddBackendServersRequest import AddBackendServersRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerTCPListenerRequest import CreateLoadBalancerTCPListenerRequest
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerRequest import DeleteLoadBalancerRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerAttributeRequest import DescribeLoadBalancerAttributeRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerListenersRequest import DescribeLoadBalancerListenersRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import DescribeLoadBalancersRequest
from aliyunsdkslb.request.v20140515.StartLoadBalancerListenerRequest import StartLoadBalancerListenerRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
from aliyunsdkvpc.request.v20160428.DeleteVSwitchRequest import DeleteVSwitchRequest
from aliyunsdkvpc.request.v20160428.DeleteVpcRequest import DeleteVpcRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from operators.emulator.alibaba import server
from operators.emulator.alibaba.backends import MemoryBackend

from .emulatorkit import AK, SK, EmulatorThread, group_params, until

ZONE = "cn-hangzhou-h"
B_KEY, B_SECRET = "LTAI-tenant-b", "secret-b"


@pytest.fixture
def emu():
    e = EmulatorThread(emulator=server.build({AK: SK}, backend=MemoryBackend(), schedule_delay=0.0, tick=0.02,
                                             settle=0.05))
    e.add_account("tenant-b", {B_KEY: B_SECRET})
    e.a, e.b = e.client(), e.client(B_KEY, B_SECRET)
    yield e
    e.stop()


def refusal(emu, client, request_class, **params) -> tuple[int, str]:
    with pytest.raises(ServerException) as e:
        emu.call(request_class(), client, **params)
    return e.value.get_http_status(), e.value.get_error_code()


def as_unknown(emu, request_class, id_param: str, theirs: str, unknown: str, **params) -> tuple[int, str]:
    """B naming A's resource is refused exactly as B naming an id nobody holds; that refusal."""
    seen = refusal(emu, emu.b, request_class, **{id_param: theirs}, **params)
    assert seen == refusal(emu, emu.b, request_class, **{id_param: unknown}, **params)
    return seen


def running_group(emu, client, name: str, **extra: str) -> str:
    gid = emu.call(CreateContainerGroupRequest(), client, **group_params(name, **extra))["ContainerGroupId"]
    until(lambda: [g for g in emu.call(DescribeContainerGroupsRequest(), client)["ContainerGroups"]
                   if g["ContainerGroupId"] == gid and g["Status"] == "Running"])
    return gid


def available_network(emu, client, cidr: str = "10.30.0.0/23") -> tuple[str, str, str]:
    """(VpcId, VSwitchId, SecurityGroupId) of the client's account, Available."""
    vpc_id = emu.call(CreateVpcRequest(), client, CidrBlock=cidr)["VpcId"]
    until(lambda: emu.call(DescribeVpcsRequest(), client, VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"] == "Available")
    vsw_id = emu.call(CreateVSwitchRequest(), client, VpcId=vpc_id, ZoneId=ZONE, CidrBlock=cidr.replace("/23", "/24"))[
        "VSwitchId"]
    until(lambda: emu.call(DescribeVSwitchesRequest(), client, VSwitchId=vsw_id)["VSwitches"]["VSwitch"][0]["Status"]
          == "Available")
    sg_id = emu.call(CreateSecurityGroupRequest(), client, VpcId=vpc_id)["SecurityGroupId"]
    return vpc_id, vsw_id, sg_id


def test_b_neither_sees_nor_touches_a_container_group(emu):
    gid = running_group(emu, emu.a, "sk8s-a", **{"Tag.1.Key": "owner", "Tag.1.Value": "a"})
    listing = emu.call(DescribeContainerGroupsRequest(), emu.b)
    assert (listing["ContainerGroups"], listing["TotalCount"]) == ([], 0)
    for filters in ({"ContainerGroupIds": json.dumps([gid])}, {"ContainerGroupName": "sk8s-a"},
                    {"Tag.1.Key": "owner"}, {"Status": "Running"}):
        assert emu.call(DescribeContainerGroupsRequest(), emu.b, **filters)["ContainerGroups"] == []
    unknown = "eci-" + "0" * 20
    assert as_unknown(emu, DeleteContainerGroupRequest, "ContainerGroupId", gid, unknown) == (
        404, "InvalidParameter.NotFound")
    new_image = {"Container.1.Name": "main", "Container.1.Image": "nginx"}
    assert as_unknown(emu, UpdateContainerGroupRequest, "ContainerGroupId", gid, unknown, **new_image) == (
        404, "InvalidParameter.NotFound")
    assert as_unknown(emu, DescribeContainerLogRequest, "ContainerGroupId", gid, unknown,
                      ContainerName="main") == (404, "InvalidParameter.NotFound")
    assert as_unknown(emu, ExecContainerCommandRequest, "ContainerGroupId", gid, unknown, ContainerName="main",
                      Command='["ls"]', Sync="true") == (404, "InvalidParameter.NotFound")
    # A's group is as it was, and A still reaches it.
    [group] = emu.call(DescribeContainerGroupsRequest(), emu.a, ContainerGroupIds=json.dumps([gid]))["ContainerGroups"]
    assert group["Status"] == "Running" and group["Containers"][0]["Image"] == "busybox"
    assert emu.backend.updates == [] and emu.backend.execs == [] and emu.backend.deleted == []
    emu.call(DeleteContainerGroupRequest(), emu.a, ContainerGroupId=gid)
    assert emu.control("inventory")["ContainerGroup"] == []


def test_b_neither_sees_nor_touches_a_vpc_its_vswitch_and_security_group(emu):
    vpc_id, vsw_id, sg_id = available_network(emu, emu.a)
    assert emu.call(DescribeVpcsRequest(), emu.b)["Vpcs"]["Vpc"] == []
    assert emu.call(DescribeVpcsRequest(), emu.b, VpcId=vpc_id)["TotalCount"] == 0
    assert emu.call(DescribeVSwitchesRequest(), emu.b, VpcId=vpc_id)["VSwitches"]["VSwitch"] == []
    assert emu.call(DescribeVSwitchesRequest(), emu.b, VSwitchId=vsw_id)["TotalCount"] == 0
    assert emu.call(DescribeSecurityGroupsRequest(), emu.b)["SecurityGroups"]["SecurityGroup"] == []
    assert emu.call(DescribeSecurityGroupsRequest(), emu.b, SecurityGroupIds=json.dumps([sg_id]))["TotalCount"] == 0
    unknown_vpc, unknown_vsw, unknown_sg = "vpc-" + "0" * 21, "vsw-" + "0" * 21, "sg-" + "0" * 21
    assert as_unknown(emu, DeleteVpcRequest, "VpcId", vpc_id, unknown_vpc) == (404, "InvalidVpcId.NotFound")
    assert as_unknown(emu, CreateVSwitchRequest, "VpcId", vpc_id, unknown_vpc, ZoneId=ZONE,
                      CidrBlock="10.30.1.0/24") == (404, "InvalidVpcId.NotFound")
    assert as_unknown(emu, CreateSecurityGroupRequest, "VpcId", vpc_id, unknown_vpc) == (404, "InvalidVpcId.NotFound")
    assert as_unknown(emu, DeleteVSwitchRequest, "VSwitchId", vsw_id, unknown_vsw) == (
        404, "InvalidVSwitchId.NotFound")
    assert as_unknown(emu, DeleteSecurityGroupRequest, "SecurityGroupId", sg_id, unknown_sg) == (
        404, "InvalidSecurityGroupId.NotFound")
    assert as_unknown(emu, AuthorizeSecurityGroupRequest, "SecurityGroupId", sg_id, unknown_sg, IpProtocol="tcp",
                      PortRange="1/65535", SourceCidrIp="0.0.0.0/0") == (404, "InvalidSecurityGroupId.NotFound")
    # B's groups are not placed in A's network: not in its VSwitch, nor with its security group.
    assert as_unknown(emu, CreateContainerGroupRequest, "VSwitchId", vsw_id, unknown_vsw,
                      **{k: v for k, v in group_params("sk8s-b", SecurityGroupId=sg_id).items() if k != "VSwitchId"}
                      ) == (404, "InvalidVSwitchId.NotFound")
    _, own_vsw, _ = available_network(emu, emu.b, "10.40.0.0/23")
    assert as_unknown(emu, CreateContainerGroupRequest, "SecurityGroupId", sg_id, unknown_sg,
                      **{k: v for k, v in group_params("sk8s-b", VSwitchId=own_vsw).items() if k != "SecurityGroupId"}
                      ) == (404, "InvalidSecurityGroupId.NotFound")
    # A's network stands whole, without B's rule; A deletes it.
    inv = emu.control("inventory")
    assert [v["VpcId"] for v in inv["Vpc"] if v["Account"] == "default"] == [vpc_id]
    assert [s["VSwitchId"] for s in inv["VSwitch"] if s["Account"] == "default"] == [vsw_id]
    assert [(g["SecurityGroupId"], g["Rules"]) for g in inv["SecurityGroup"] if g["Account"] == "default"] == [
        (sg_id, [])]
    assert inv["ContainerGroup"] == []
    emu.call(DeleteSecurityGroupRequest(), emu.a, SecurityGroupId=sg_id)
    emu.call(DeleteVSwitchRequest(), emu.a, VSwitchId=vsw_id)
    emu.call(DeleteVpcRequest(), emu.a, VpcId=vpc_id)


def test_b_neither_sees_nor_touches_a_load_balancer(emu):
    gid = running_group(emu, emu.a, "sk8s-web")
    lb_id = emu.call(CreateLoadBalancerRequest(), emu.a, LoadBalancerName="web",
                     **{"Tag.1.Key": "owner", "Tag.1.Value": "a"})["LoadBalancerId"]
    emu.call(CreateLoadBalancerTCPListenerRequest(), emu.a, LoadBalancerId=lb_id, ListenerPort="80",
             BackendServerPort="8080")
    ip = emu.call(DescribeContainerGroupsRequest(), emu.a)["ContainerGroups"][0]["IntranetIp"]
    backend = json.dumps([{"ServerId": gid, "Type": "eci", "ServerIp": ip}])
    emu.call(AddBackendServersRequest(), emu.a, LoadBalancerId=lb_id, BackendServers=backend)
    assert emu.call(DescribeLoadBalancersRequest(), emu.b)["TotalCount"] == 0
    for filters in ({"LoadBalancerId": lb_id}, {"LoadBalancerName": "web"}, {"Tag.1.Key": "owner"}):
        assert emu.call(DescribeLoadBalancersRequest(), emu.b, **filters)["LoadBalancers"]["LoadBalancer"] == []
    assert emu.call(DescribeLoadBalancerListenersRequest(), emu.b, **{"LoadBalancerId.1": lb_id})["Listeners"] == []
    unknown = "lb-" + "0" * 22
    for request_class, params in ((DescribeLoadBalancerAttributeRequest, {}), (DeleteLoadBalancerRequest, {}),
                                  (StartLoadBalancerListenerRequest, {"ListenerPort": "80"}),
                                  (CreateLoadBalancerTCPListenerRequest, {"ListenerPort": "81",
                                                                          "BackendServerPort": "81"}),
                                  (AddBackendServersRequest, {"BackendServers": backend})):
        assert as_unknown(emu, request_class, "LoadBalancerId", lb_id, unknown, **params) == (
            404, "InvalidLoadBalancerId.NotFound"), request_class
    # A's group is no backend B can add to its own SLB: it is a server that does not exist.
    own = emu.call(CreateLoadBalancerRequest(), emu.b)["LoadBalancerId"]
    assert refusal(emu, emu.b, AddBackendServersRequest, LoadBalancerId=own, BackendServers=backend) == refusal(
        emu, emu.b, AddBackendServersRequest, LoadBalancerId=own,
        BackendServers=json.dumps([{"ServerId": "eci-" + "0" * 20, "Type": "eci", "ServerIp": ip}])) == (
        400, "InvalidParameter")
    # Nor is A's VSwitch a place for B's intranet SLB.
    _, vsw_id, _ = available_network(emu, emu.a)
    assert as_unknown(emu, CreateLoadBalancerRequest, "VSwitchId", vsw_id, "vsw-" + "0" * 21,
                      AddressType="intranet") == (404, "InvalidVSwitchId.NotFound")
    [mine] = [lb for lb in emu.control("inventory")["LoadBalancer"] if lb["Account"] == "default"]
    assert (mine["LoadBalancerId"], mine["Listeners"], mine["BackendServers"]) == (lb_id, ["tcp/80"], [gid])
    attribute = emu.call(DescribeLoadBalancerAttributeRequest(), emu.a, LoadBalancerId=lb_id)
    assert attribute["ListenerPorts"]["ListenerPort"] == [80]


def test_b_neither_sees_nor_touches_a_private_zone(emu):
    vpc_id, _, _ = available_network(emu, emu.a)
    zone = emu.call(AddZoneRequest(), emu.a, ZoneName="cluster.local")["ZoneId"]
    emu.call(UpdateZoneRemarkRequest(), emu.a, ZoneId=zone, Remark="sk8s.a")
    record = emu.call(AddZoneRecordRequest(), emu.a, ZoneId=zone, Rr="web", Type="A", Value="10.30.0.5")["RecordId"]
    emu.call(BindZoneVpcRequest(), emu.a, ZoneId=zone, **{"Vpcs.1.RegionId": "cn-hangzhou", "Vpcs.1.VpcId": vpc_id})
    assert emu.call(DescribeZonesRequest(), emu.b)["TotalItems"] == 0
    assert emu.call(DescribeZonesRequest(), emu.b, Keyword="cluster.local")["Zones"]["Zone"] == []
    assert emu.call(DescribeZonesRequest(), emu.b, QueryVpcId=vpc_id)["Zones"]["Zone"] == []
    unknown = "0" * 32
    for request_class, params in ((DescribeZoneInfoRequest, {}), (UpdateZoneRemarkRequest, {"Remark": "b"}),
                                  (DeleteZoneRequest, {}), (DescribeZoneRecordsRequest, {}),
                                  (AddZoneRecordRequest, {"Rr": "evil", "Type": "A", "Value": "10.30.0.6"}),
                                  (BindZoneVpcRequest, {})):
        assert as_unknown(emu, request_class, "ZoneId", zone, unknown, **params) == (400, "Zone.NotExists"), \
            request_class
    assert as_unknown(emu, UpdateZoneRecordRequest, "RecordId", str(record), "1", Rr="web", Type="A",
                      Value="10.30.0.6") == (400, "Record.NotExists")
    assert as_unknown(emu, DeleteZoneRecordRequest, "RecordId", str(record), "1") == (400, "Record.NotExists")
    # B's own zone is not bound to A's VPC: it is a VPC that does not exist.
    own = emu.call(AddZoneRequest(), emu.b, ZoneName="cluster.local")["ZoneId"]
    assert refusal(emu, emu.b, BindZoneVpcRequest, ZoneId=own, **{"Vpcs.1.VpcId": vpc_id}) == refusal(
        emu, emu.b, BindZoneVpcRequest, ZoneId=own, **{"Vpcs.1.VpcId": "vpc-" + "0" * 21}) == (
        400, "InvalidVpcId.NotFound")
    [mine] = [z for z in emu.control("inventory")["PrivateZone"] if z["Account"] == "default"]
    assert (mine["ZoneId"], mine["Remark"], [v["VpcId"] for v in mine["Vpcs"]]) == (zone, "sk8s.a", [vpc_id])
    assert [(r["Rr"], r["Value"]) for r in mine["Records"]] == [("web", "10.30.0.5")]
    info = emu.call(DescribeZoneInfoRequest(), emu.a, ZoneId=zone)
    assert info["RecordCount"] == 1


def test_client_tokens_are_per_account(emu):
    token = {"ClientToken": "same-token"}
    a_vpc = emu.call(CreateVpcRequest(), emu.a, CidrBlock="10.30.0.0/23", **token)["VpcId"]
    # The same token in B makes B's own VPC, whatever A sent with it; and again in B, B's again.
    b_vpc = emu.call(CreateVpcRequest(), emu.b, CidrBlock="10.40.0.0/23", **token)["VpcId"]
    assert b_vpc != a_vpc
    assert emu.call(CreateVpcRequest(), emu.b, CidrBlock="10.40.0.0/23", **token)["VpcId"] == b_vpc
    assert emu.call(CreateVpcRequest(), emu.a, CidrBlock="10.30.0.0/23", **token)["VpcId"] == a_vpc
    assert refusal(emu, emu.a, CreateVpcRequest, CidrBlock="10.40.0.0/23", **token) == (
        400, "IdempotentParameterMismatch")
    a_group = emu.call(CreateContainerGroupRequest(), emu.a, **group_params("sk8s-same", **token))["ContainerGroupId"]
    b_group = emu.call(CreateContainerGroupRequest(), emu.b, **group_params("sk8s-same", **token))["ContainerGroupId"]
    a_lb = emu.call(CreateLoadBalancerRequest(), emu.a, **token)["LoadBalancerId"]
    b_lb = emu.call(CreateLoadBalancerRequest(), emu.b, **token)["LoadBalancerId"]
    assert a_group != b_group and a_lb != b_lb
    inv = emu.control("inventory")
    assert {(v["VpcId"], v["Account"]) for v in inv["Vpc"]} == {(a_vpc, "default"), (b_vpc, "tenant-b")}
    assert {(g["ContainerGroupId"], g["Account"]) for g in inv["ContainerGroup"]} == {
        (a_group, "default"), (b_group, "tenant-b")}
    assert {(lb["LoadBalancerId"], lb["Account"]) for lb in inv["LoadBalancer"]} == {
        (a_lb, "default"), (b_lb, "tenant-b")}


def test_the_inventory_names_every_resources_account(emu):
    available_network(emu, emu.a)
    available_network(emu, emu.b, "10.40.0.0/23")
    running_group(emu, emu.b, "sk8s-b")
    emu.call(CreateLoadBalancerRequest(), emu.b)
    emu.call(AddZoneRequest(), emu.b, ZoneName="cluster.local")
    inv = emu.control("inventory")
    accounts = {kind: sorted(item["Account"] for item in items) for kind, items in inv.items()}
    assert accounts == {"ContainerGroup": ["tenant-b"], "Vpc": ["default", "tenant-b"],
                        "VSwitch": ["default", "tenant-b"], "SecurityGroup": ["default", "tenant-b"],
                        "LoadBalancer": ["tenant-b"], "PrivateZone": ["tenant-b"]}


def test_an_accounts_keys_share_its_resources_and_a_known_key_is_refused(emu):
    vpc_id = emu.call(CreateVpcRequest(), emu.b, CidrBlock="10.40.0.0/23")["VpcId"]
    # A second key of tenant-b sees tenant-b's VPC; the first account's key does not.
    assert emu.add_account("tenant-b", {"LTAI-tenant-b-2": "secret-b-2"}) == {}
    second = emu.client("LTAI-tenant-b-2", "secret-b-2")
    assert [v["VpcId"] for v in emu.call(DescribeVpcsRequest(), second)["Vpcs"]["Vpc"]] == [vpc_id]
    assert emu.call(DescribeVpcsRequest(), emu.a)["Vpcs"]["Vpc"] == []
    for name, keys in (("tenant-c", {AK: "other"}), ("tenant-c", {B_KEY: B_SECRET}), ("tenant-b", {B_KEY: "x"}),
                       ("tenant-c", {"LTAI-new": "s", "LTAI-tenant-b-2": "s"})):
        with pytest.raises(urllib.error.HTTPError) as e:
            emu.add_account(name, keys)
        assert e.value.code == 400 and "already known" in json.loads(e.value.read())["error"]
    for body in ({"name": "", "keys": {"LTAI-c": "s"}}, {"name": "tenant-c", "keys": {}},
                 {"name": "tenant-c", "keys": {"LTAI-c": ""}}, ["tenant-c"]):
        with pytest.raises(urllib.error.HTTPError) as e:
            emu.control("accounts", body, method="POST")
        assert e.value.code == 400 and json.loads(e.value.read())["error"]
    # Nothing refused was added: "LTAI-new" is no key; the default account's secret is its own.
    assert refusal(emu, emu.client("LTAI-new", "s"), DescribeVpcsRequest) == (404, "InvalidAccessKeyId.NotFound")
    assert emu.call(DescribeVpcsRequest(), emu.a)["TotalCount"] == 0
    # A key of an added account is switched off and on as any key is.
    assert emu.control("keys", {"disable": [B_KEY]}) == {"disabled": [B_KEY]}
    assert refusal(emu, emu.b, DescribeVpcsRequest) == (400, "InvalidAccessKeyId.Inactive")
    emu.control("keys", {"enable": [B_KEY]})
    assert emu.call(DescribeVpcsRequest(), emu.b)["TotalCount"] == 1
