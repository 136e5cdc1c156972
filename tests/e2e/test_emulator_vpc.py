"""The Alibaba emulator's VPCs are real local networks: CreateVpc + CreateVSwitch through the
real SDK make the local provider's VPC network with the VPC's range; container groups in the
VSwitch run as sandboxes in it, with addresses from the VSwitch's range, and reach each
other; DeleteVpc removes the network. The aliyun provider's side: a cluster's network made
through the APIs is the local network keyed by the cluster, its sandbox runs in it, and
release_cluster removes it.

The emulator runs in this process with an installation id of its own (emulated.py)."""
from __future__ import annotations

import ipaddress
import json
import uuid

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteSecurityGroupRequest import DeleteSecurityGroupRequest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
from aliyunsdkvpc.request.v20160428.DeleteVSwitchRequest import DeleteVSwitchRequest
from aliyunsdkvpc.request.v20160428.DeleteVpcRequest import DeleteVpcRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from operators.emulator.alibaba.networking import networking
from operators.models.podspec import PodSpec
from operators.providers.aliyun.eci_spec import EciPlacement
from operators.providers.aliyun.provider import AliyunProvider
from operators.providers.local.vpc import VpcLayout
from operators.providers.sandbox import SandboxRef

from .conftest import IMAGE, Meta
from .emulated import running
from .test_emulator_podman import PodmanEmulator, container, pod_ip, pod_of


class VpcEmulator(PodmanEmulator):
    """The VPC and ECS modules wired as server.build() wires them."""

    suffix = "v"

    def services(self) -> list:
        self.vpc, self.ecs = networking(self.eci, self.backend, settle=0.2)
        return [self.vpc, self.ecs]

    def call_create(self, name: str, **params: str) -> str:
        return self.call(CreateContainerGroupRequest(), ContainerGroupName=name, **params)["ContainerGroupId"]


@pytest.fixture(scope="module")
def emu(meta: Meta, tmp_path_factory):
    with running(VpcEmulator, meta, tmp_path_factory.mktemp("emulator-vpc")) as e:
        yield e


def network(meta: Meta, name: str) -> dict | None:
    res = meta.podman("network", "inspect", name)
    if res.returncode != 0:
        return None
    net = json.loads(res.stdout)
    return net[0] if isinstance(net, list) else net


def test_a_vpc_is_a_local_network_its_groups_reach_each_other_and_deletion_removes_it(
        emu: VpcEmulator, meta: Meta, tmp_path):
    cidr = emu.submit(emu.provider.reserve_network(str(tmp_path)))  # a range no other network has
    pods_half = str(list(ipaddress.ip_network(cidr).subnets(prefixlen_diff=1))[0])
    try:
        vpc_id = emu.call(CreateVpcRequest(), CidrBlock=cidr, ClientToken="sk8s-e2e-vpc")["VpcId"]
        emu.until(lambda: emu.call(DescribeVpcsRequest(), VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"] == "Available",
                  "the VPC Available")
        name = f"sk8s-{emu.home_id}-{vpc_id[:12]}"
        net = network(meta, name)
        assert net is not None and net["subnets"][0]["subnet"] == cidr
        vsw = emu.call(CreateVSwitchRequest(), VpcId=vpc_id, ZoneId="cn-hangzhou-h", CidrBlock=pods_half)["VSwitchId"]
        emu.until(lambda: emu.call(DescribeVSwitchesRequest(), VSwitchId=vsw)["VSwitches"]["VSwitch"][0]["Status"]
                  == "Available", "the VSwitch Available")
        sg = emu.call(CreateSecurityGroupRequest(), VpcId=vpc_id)["SecurityGroupId"]
        common = {"VSwitchId": vsw, "SecurityGroupId": sg, "TerminationGracePeriodSeconds": "0",
                  "Container.1.Image": IMAGE, "Container.1.ImagePullPolicy": "IfNotPresent"}
        web = emu.call_create("e2e-vpc-web", **common, **{
            "Container.1.Name": "web", "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
            "Container.1.Arg.1": "mkdir -p /srv && echo hello-from-the-vpc > /srv/index.html && "
                                 "exec httpd -f -p 8080 -h /srv",
            "Container.1.ReadinessProbe.TcpSocket.Port": "8080", "Container.1.ReadinessProbe.PeriodSeconds": "1"})
        group = emu.wait(web, lambda g: g["Status"] == "Running" and container(g, "web")["Ready"])
        ip = group["IntranetIp"]
        assert group["VpcId"] == vpc_id and ipaddress.ip_address(ip) in ipaddress.ip_network(pods_half)
        assert ip == pod_ip(meta, pod_of(meta, f"sk8s-{web}")[0]["Name"])
        client = emu.call_create("e2e-vpc-client", RestartPolicy="Never", **common, **{
            "Container.1.Name": "client", "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
            "Container.1.Arg.1": f"for i in $(seq 1 20); do timeout 3 wget -qO- http://{ip}:8080/index.html "
                                 "&& exit 0; sleep 1; done; exit 1"})
        done = emu.wait(client, lambda g: g["Status"] in ("Succeeded", "Failed"))
        assert ipaddress.ip_address(done["IntranetIp"]) in ipaddress.ip_network(pods_half)
        assert done["Status"] == "Succeeded", emu.logs(client, "client")
        assert "hello-from-the-vpc" in emu.logs(client, "client")
        with pytest.raises(ServerException) as e:  # the cloud's order: groups, VSwitch, group, VPC
            emu.call(DeleteVpcRequest(), VpcId=vpc_id)
        assert e.value.get_error_code() == "DependencyViolation.VSwitch"
        for gid in (web, client):
            emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)
        emu.until(lambda: not pod_of(meta, f"sk8s-{web}") and not pod_of(meta, f"sk8s-{client}"), "the pods gone")
        emu.call(DeleteVSwitchRequest(), VSwitchId=vsw)
        emu.call(DeleteSecurityGroupRequest(), SecurityGroupId=sg)
        emu.call(DeleteVpcRequest(), VpcId=vpc_id)
        emu.until(lambda: network(meta, name) is None, f"the network {name} removed")
    finally:
        emu.submit(emu.provider.release_network(cidr))


def test_the_aliyun_provider_makes_a_clusters_network_runs_its_sandbox_in_it_and_releases_it(
        emu: VpcEmulator, meta: Meta, tmp_path):
    cidr = emu.submit(emu.provider.reserve_network(str(tmp_path)))
    layout = VpcLayout(ipaddress.ip_network(cidr))
    cluster_uid = str(uuid.uuid4())
    client = emu.client()
    placement = EciPlacement(region_id="cn-hangzhou", zone_id="cn-hangzhou-h", vswitch_id="vsw-sk8s-local",
                             security_group_id="sg-sk8s-local", cluster_uid="", home_id="e2e-home")
    provider = AliyunProvider(client, placement)
    ref = SandboxRef("tenant-e2e", "app-1", str(uuid.uuid4()))
    spec = PodSpec.model_validate({"terminationGracePeriodSeconds": 0, "containers": [
        {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]})
    try:
        assert emu.submit(provider.ensure_cluster_network(cluster_uid, cidr)) == layout.resolver
        name = f"sk8s-{emu.home_id}-{cluster_uid[:12]}"  # the local network is keyed by the cluster
        assert network(meta, name)["subnets"][0]["subnet"] == cidr
        gid = emu.submit(provider.ensure(ref, spec, {"sk8s.io/cluster-uid": cluster_uid}))
        group = emu.wait(gid, lambda g: g["Status"] == "Running" and g["IntranetIp"])
        assert ipaddress.ip_address(group["IntranetIp"]) in layout.pod_range
        assert group["IntranetIp"] == pod_ip(meta, pod_of(meta, f"sk8s-{ref.uid}")[0]["Name"])
        emu.submit(provider.delete(ref, 0))
        emu.until(lambda: not pod_of(meta, f"sk8s-{ref.uid}"), "the sandbox gone")
        emu.submit(provider.release_cluster(cluster_uid))
        emu.until(lambda: network(meta, name) is None, f"the network {name} removed")
        inventory = emu.inventory()
        assert [inventory[k] for k in ("Vpc", "VSwitch", "SecurityGroup")] == [[], [], []]
    finally:
        emu.submit(emu.provider.release_network(cidr))
