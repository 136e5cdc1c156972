"""The emulator's VPC and ECS (security group) APIs through the real SDK: async status,
ClientToken, Tag.N, paging, dependency and not-found errors, and ECI placing its groups in
the emulator's VSwitches (or taking an account's own ids as given)."""
from __future__ import annotations

import ipaddress
import json

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.AuthorizeSecurityGroupRequest import AuthorizeSecurityGroupRequest
from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteSecurityGroupRequest import DeleteSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
from aliyunsdkvpc.request.v20160428.DeleteVSwitchRequest import DeleteVSwitchRequest
from aliyunsdkvpc.request.v20160428.DeleteVpcRequest import DeleteVpcRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from operators.emulator.alibaba import server
from operators.emulator.alibaba.errors import ApiError
from operators.emulator.alibaba.launch import PLACEMENT_ENV
from operators.emulator.alibaba.local_vpcs import check_vswitch
from operators.emulator.alibaba.podman_backend import labels_of
from operators.providers.aliyun.eci_status import tag_value

from .emulatorkit import AK, SK, group_params, until
from .netkit import NetworkEmulator

ZONE = "cn-hangzhou-h"


@pytest.fixture
def emu():
    e = NetworkEmulator()
    yield e
    e.stop()


def refused(emu, request, **params) -> tuple[int, str]:
    with pytest.raises(ServerException) as e:
        emu.call(request, **params)
    return e.value.get_http_status(), e.value.get_error_code()


def vpcs(emu, **filters) -> dict:
    return emu.call(DescribeVpcsRequest(), **filters)


def available_vpc(emu, cidr: str = "10.20.0.0/23", **params) -> str:
    vpc_id = emu.call(CreateVpcRequest(), CidrBlock=cidr, **params)["VpcId"]
    until(lambda: vpcs(emu, VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"] == "Available")
    return vpc_id


def available_vswitch(emu, vpc_id: str, cidr: str) -> str:
    vsw_id = emu.call(CreateVSwitchRequest(), VpcId=vpc_id, ZoneId=ZONE, CidrBlock=cidr)["VSwitchId"]
    until(lambda: emu.call(DescribeVSwitchesRequest(), VSwitchId=vsw_id)["VSwitches"]["VSwitch"][0]["Status"]
          == "Available")
    return vsw_id


def test_a_vpc_is_pending_then_available_then_deleted_with_its_network(emu):
    vpc_id = emu.call(CreateVpcRequest(), CidrBlock="10.20.0.0/23", VpcName="demo")["VpcId"]
    assert vpc_id.startswith("vpc-")
    first = vpcs(emu, VpcId=vpc_id)["Vpcs"]["Vpc"][0]
    assert (first["Status"], first["CidrBlock"], first["VpcName"]) == ("Pending", "10.20.0.0/23", "demo")
    # No VSwitch in a VPC the cloud is still making.
    assert refused(emu, CreateVSwitchRequest(), VpcId=vpc_id, ZoneId=ZONE,
                   CidrBlock="10.20.0.0/24") == (400, "IncorrectVpcStatus")
    until(lambda: vpcs(emu, VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"] == "Available")
    assert emu.networks.networks == {vpc_id: "10.20.0.0/23"}  # untagged: its own id is its local key
    emu.call(DeleteVpcRequest(), VpcId=vpc_id)
    assert vpcs(emu)["Vpcs"]["Vpc"] == []
    until(lambda: emu.networks.released == [vpc_id])
    assert refused(emu, DeleteVpcRequest(), VpcId=vpc_id) == (404, "InvalidVpcId.NotFound")


def test_deletion_order_is_enforced_with_the_clouds_codes(emu):
    vpc_id = available_vpc(emu)
    vsw = available_vswitch(emu, vpc_id, "10.20.0.0/24")
    sg = emu.call(CreateSecurityGroupRequest(), VpcId=vpc_id)["SecurityGroupId"]
    assert vpcs(emu, VpcId=vpc_id)["Vpcs"]["Vpc"][0]["VSwitchIds"]["VSwitchId"] == [vsw]
    assert refused(emu, DeleteVpcRequest(), VpcId=vpc_id) == (400, "DependencyViolation.VSwitch")
    emu.call(DeleteVSwitchRequest(), VSwitchId=vsw)
    assert refused(emu, DeleteVSwitchRequest(), VSwitchId=vsw) == (404, "InvalidVSwitchId.NotFound")
    assert refused(emu, DeleteVpcRequest(), VpcId=vpc_id) == (400, "DependencyViolation.SecurityGroup")
    emu.call(DeleteSecurityGroupRequest(), SecurityGroupId=sg)
    assert refused(emu, DeleteSecurityGroupRequest(), SecurityGroupId=sg) == (404, "InvalidSecurityGroupId.NotFound")
    emu.call(DeleteVpcRequest(), VpcId=vpc_id)
    assert emu.control("inventory") == {"ContainerGroup": [], "Vpc": [], "VSwitch": [], "SecurityGroup": []}


def test_cidr_blocks_are_checked_as_the_cloud_does(emu):
    assert refused(emu, CreateVpcRequest(), CidrBlock="8.8.0.0/16") == (400, "InvalidCidrBlock.Malformed")
    assert refused(emu, CreateVpcRequest(), CidrBlock="10.20.0.1/23") == (400, "InvalidCidrBlock.Malformed")
    assert refused(emu, CreateVpcRequest(), CidrBlock="10.0.0.0/30") == (400, "InvalidCidrBlock.Malformed")
    vpc_id = available_vpc(emu)
    for outside in ("10.21.0.0/24", "10.20.0.0/22"):
        assert refused(emu, CreateVSwitchRequest(), VpcId=vpc_id, ZoneId=ZONE,
                       CidrBlock=outside) == (400, "InvalidCidrBlock.Malformed")
    emu.call(CreateVSwitchRequest(), VpcId=vpc_id, ZoneId=ZONE, CidrBlock="10.20.0.0/24")
    assert refused(emu, CreateVSwitchRequest(), VpcId=vpc_id, ZoneId=ZONE,
                   CidrBlock="10.20.0.128/25") == (400, "InvalidCidrBlock.Overlapped")
    assert refused(emu, CreateVSwitchRequest(), VpcId=vpc_id, CidrBlock="10.20.1.0/24") == (400, "MissingParameter")
    assert refused(emu, CreateVSwitchRequest(), VpcId="vpc-nope", ZoneId=ZONE,
                   CidrBlock="10.20.1.0/24") == (404, "InvalidVpcId.NotFound")
    assert refused(emu, CreateSecurityGroupRequest(), VpcId="vpc-nope") == (404, "InvalidVpcId.NotFound")


def test_client_token_makes_creates_idempotent(emu):
    first = emu.call(CreateVpcRequest(), CidrBlock="10.20.0.0/23", ClientToken="sk8s-u1")["VpcId"]
    assert emu.call(CreateVpcRequest(), CidrBlock="10.20.0.0/23", ClientToken="sk8s-u1")["VpcId"] == first
    assert refused(emu, CreateVpcRequest(), CidrBlock="10.30.0.0/23",
                   ClientToken="sk8s-u1") == (400, "IdempotentParameterMismatch")
    until(lambda: vpcs(emu, VpcId=first)["Vpcs"]["Vpc"][0]["Status"] == "Available")
    params = {"VpcId": first, "ZoneId": ZONE, "CidrBlock": "10.20.0.0/24", "ClientToken": "sk8s-u1-pods"}
    vsw = emu.call(CreateVSwitchRequest(), **params)["VSwitchId"]
    assert emu.call(CreateVSwitchRequest(), **params)["VSwitchId"] == vsw
    sg = emu.call(CreateSecurityGroupRequest(), VpcId=first, ClientToken="sk8s-u1-sg")["SecurityGroupId"]
    assert emu.call(CreateSecurityGroupRequest(), VpcId=first, ClientToken="sk8s-u1-sg")["SecurityGroupId"] == sg
    inv = emu.control("inventory")
    assert (len(inv["Vpc"]), len(inv["VSwitch"]), len(inv["SecurityGroup"])) == (1, 1, 1)


def test_describes_filter_by_tags_and_page(emu):
    made = []
    for i in range(12):
        tags = {"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1" if i % 3 else "h2",
                "Tag.2.Key": "sk8s.io/cluster-uid", "Tag.2.Value": f"c{i}"}
        made.append(emu.call(CreateVpcRequest(), CidrBlock=f"10.{40 + i}.0.0/23", **tags)["VpcId"])
    pages = [vpcs(emu, PageSize="5", PageNumber=str(n)) for n in (1, 2, 3)]
    assert [len(p["Vpcs"]["Vpc"]) for p in pages] == [5, 5, 2]
    assert {p["TotalCount"] for p in pages} == {12}
    assert [v["VpcId"] for p in pages for v in p["Vpcs"]["Vpc"]] == made  # creation order, each once
    assert refused(emu, DescribeVpcsRequest(), PageSize="51") == (400, "InvalidParameter")
    home1 = vpcs(emu, PageSize="50", **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1"})
    assert home1["TotalCount"] == 8
    one = vpcs(emu, **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1",
                       "Tag.2.Key": "sk8s.io/cluster-uid", "Tag.2.Value": "c4"})
    assert [v["VpcId"] for v in one["Vpcs"]["Vpc"]] == [made[4]]
    assert vpcs(emu, **{"Tag.1.Key": "sk8s.io/cluster-uid"})["TotalCount"] == 12  # a key alone
    assert vpcs(emu, VpcId=f"{made[0]},{made[5]}")["TotalCount"] == 2
    assert refused(emu, CreateVpcRequest(), CidrBlock="10.99.0.0/23",
                   **{"Tag.1.Key": "aliyun-x", "Tag.1.Value": "v"}) == (400, "InvalidParameter")
    # Security groups: ECS spells tags {TagKey, TagValue}; ids as a JSON array.
    until(lambda: vpcs(emu, VpcId=made[1])["Vpcs"]["Vpc"][0]["Status"] == "Available")
    sgs = [emu.call(CreateSecurityGroupRequest(), VpcId=made[1], **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": h})
           ["SecurityGroupId"] for h in ("h1", "h2", "h1")]
    found = emu.call(DescribeSecurityGroupsRequest(), VpcId=made[1], **{"Tag.1.Key": "sk8s.io/home", "Tag.1.Value": "h1"})
    assert [g["SecurityGroupId"] for g in found["SecurityGroups"]["SecurityGroup"]] == [sgs[0], sgs[2]]
    assert found["SecurityGroups"]["SecurityGroup"][0]["Tags"]["Tag"] == [{"TagKey": "sk8s.io/home", "TagValue": "h1"}]
    by_ids = emu.call(DescribeSecurityGroupsRequest(), SecurityGroupIds=json.dumps(sgs[1:]), PageSize="1")
    assert by_ids["TotalCount"] == 2 and [g["SecurityGroupId"] for g in by_ids["SecurityGroups"]["SecurityGroup"]] \
        == [sgs[1]]


def test_local_key_is_the_cluster_tag_else_the_vpc_id(emu):
    tagged = available_vpc(emu, "10.20.0.0/23", **{"Tag.1.Key": "sk8s.io/cluster-uid",
                                                   "Tag.1.Value": tag_value("aliyun-c1")})
    plain = available_vpc(emu, "10.22.0.0/23")
    assert emu.vpc.local_key(tagged) == "aliyun-c1"  # the escaped value read back
    assert emu.vpc.local_key(plain) == plain
    assert emu.vpc.local_key("vpc-unknown") is None
    assert emu.networks.networks == {"aliyun-c1": "10.20.0.0/23", plain: "10.22.0.0/23"}
    vsw = available_vswitch(emu, plain, "10.22.0.0/24")
    assert emu.vpc.vswitch(vsw)["VpcId"] == plain and emu.vpc.vswitch(vsw)["CidrBlock"] == "10.22.0.0/24"
    assert emu.vpc.vswitch("vsw-unknown") is None


def groups(emu, **filters) -> list[dict]:
    return emu.call(DescribeContainerGroupsRequest(), **filters)["ContainerGroups"]


def test_eci_groups_are_placed_in_the_emulators_vswitches(emu):
    vpc_id = available_vpc(emu)
    vsw = available_vswitch(emu, vpc_id, "10.20.0.0/24")
    sg = emu.call(CreateSecurityGroupRequest(), VpcId=vpc_id)["SecurityGroupId"]
    gid = emu.call(CreateContainerGroupRequest(), **group_params("sk8s-in-vpc", VSwitchId=vsw,
                                                                 SecurityGroupId=sg))["ContainerGroupId"]
    until(lambda: groups(emu, ContainerGroupIds=json.dumps([gid]))[0]["Status"] == "Running")
    group = groups(emu, ContainerGroupIds=json.dumps([gid]))[0]
    assert group["VpcId"] == vpc_id and group["VSwitchId"] == vsw
    assert ipaddress.ip_address(group["IntranetIp"]) in ipaddress.ip_network("10.20.0.0/24")
    # In use: neither the VSwitch nor the group may go, nor the VPC.
    assert refused(emu, DeleteVSwitchRequest(), VSwitchId=vsw) == (400, "DependencyViolation")
    assert refused(emu, DeleteSecurityGroupRequest(), SecurityGroupId=sg) == (403, "DependencyViolation")
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)
    emu.call(DeleteVSwitchRequest(), VSwitchId=vsw)
    emu.call(DeleteSecurityGroupRequest(), SecurityGroupId=sg)
    emu.call(DeleteVpcRequest(), VpcId=vpc_id)


def test_eci_refuses_unknown_or_mismatched_emulator_ids_and_takes_an_accounts_own(emu):
    vpc_a, vpc_b = available_vpc(emu, "10.20.0.0/23"), available_vpc(emu, "10.22.0.0/23")
    vsw = available_vswitch(emu, vpc_a, "10.20.0.0/24")
    sg_b = emu.call(CreateSecurityGroupRequest(), VpcId=vpc_b)["SecurityGroupId"]
    ghost_vsw, ghost_sg = "vsw-" + "a" * 21, "sg-" + "b" * 21
    assert refused(emu, CreateContainerGroupRequest(), **group_params(
        "sk8s-g1", VSwitchId=ghost_vsw)) == (404, "InvalidVSwitchId.NotFound")
    assert refused(emu, CreateContainerGroupRequest(), **group_params(
        "sk8s-g2", SecurityGroupId=ghost_sg)) == (404, "InvalidSecurityGroupId.NotFound")
    assert refused(emu, CreateContainerGroupRequest(), **group_params(
        "sk8s-g3", VSwitchId=vsw)) == (404, "InvalidSecurityGroupId.NotFound")  # sg-test: not of its VPC
    assert refused(emu, CreateContainerGroupRequest(), **group_params(
        "sk8s-g4", VSwitchId=vsw, SecurityGroupId=sg_b)) == (400, "InvalidSecurityGroup.NotInVpc")
    # The default placement of launch.PLACEMENT_ENV: an account's own VSwitch and group.
    own = group_params("sk8s-g5", VSwitchId=PLACEMENT_ENV["SK8S_ALIYUN_VSWITCH"],
                       SecurityGroupId=PLACEMENT_ENV["SK8S_ALIYUN_SECURITY_GROUP"])
    gid = emu.call(CreateContainerGroupRequest(), **own)["ContainerGroupId"]
    assert "VpcId" not in groups(emu, ContainerGroupIds=json.dumps([gid]))[0]
    assert [g["ContainerGroupName"] for g in emu.control("inventory")["ContainerGroup"]] == ["sk8s-g5"]


def test_authorize_keeps_the_rule_once(emu):
    vpc_id = available_vpc(emu)
    sg = emu.call(CreateSecurityGroupRequest(), VpcId=vpc_id)["SecurityGroupId"]
    rule = {"SecurityGroupId": sg, "IpProtocol": "tcp", "PortRange": "80/80", "SourceCidrIp": "10.20.0.0/23"}
    emu.call(AuthorizeSecurityGroupRequest(), **rule)
    emu.call(AuthorizeSecurityGroupRequest(), **rule)
    assert emu.control("inventory")["SecurityGroup"][0]["Rules"] == [
        {"IpProtocol": "tcp", "PortRange": "80/80", "Policy": "accept", "Priority": "1",
         "SourceCidrIp": "10.20.0.0/23"}]
    assert refused(emu, AuthorizeSecurityGroupRequest(), **{**rule, "IpProtocol": "sctp"}) == (400, "InvalidParameter")


def test_the_podman_backend_runs_a_group_in_its_vswitchs_vpc_network():
    local = {"Key": "c-1", "CidrBlock": "10.20.0.0/23", "VSwitchCidr": "10.20.0.0/24"}
    group = {"Tag": [{"Key": "sk8s.io/cluster-uid", "Value": "another"}], "LocalVpc": local}
    assert labels_of(group) == {"sk8s.io/cluster-uid": "c-1"}  # the VSwitch's VPC, whatever the tags say
    assert labels_of({"Tag": [{"Key": "sk8s.io/cluster-uid", "Value": "c-2"}]}) == {"sk8s.io/cluster-uid": "c-2"}
    check_vswitch(local)
    check_vswitch({**local, "VSwitchCidr": "10.20.0.0/23"})
    for outside in ("10.20.1.0/24", "10.20.0.0/25"):  # addresses would come from outside the VSwitch
        with pytest.raises(ApiError) as e:
            check_vswitch({**local, "VSwitchCidr": outside})
        assert e.value.code == "InvalidParameter" and "VSwitchId" in e.value.message


def test_build_serves_vpc_and_security_groups_with_eci_placing_groups_in_them():
    emulator = server.build({AK: SK})
    assert {("2016-04-28", a) for a in ("CreateVpc", "DescribeVpcs", "DeleteVpc", "CreateVSwitch", "DescribeVSwitches",
                                        "DeleteVSwitch")} <= set(emulator.routes)
    assert {("2014-05-26", a) for a in ("CreateSecurityGroup", "DescribeSecurityGroups", "DeleteSecurityGroup",
                                        "AuthorizeSecurityGroup")} <= set(emulator.routes)
    eci = next(s for s in emulator.services if s.product == "Eci")
    assert eci.network is not None
