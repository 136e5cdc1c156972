"""SLB on the emulator's local data plane, made by the aliyun load balancers through the real
SDK: an intranet SLB on an address of the tenant's VPC forwards TCP to a container group
that is a real sandbox in that VPC, an internet SLB answers on its loopback address from
this host, a listener whose backend port is closed reports it abnormal, and deleting the
SLBs stops them answering.

The emulator runs in this process with an installation id of its own (emulated.py); the VPC directory is a stub naming the sandbox's
local VPC (the VPC API has its own tests)."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
import uuid
from types import SimpleNamespace

import pytest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest

from operators.emulator.alibaba.slb import EciServers, SlbService
from operators.emulator.alibaba.slb_backends import LocalLbBackend
from operators.providers.aliyun.slb import AliyunLoadBalancers
from operators.providers.local.loadbalancer import LocalLoadBalancers
from operators.providers.services import LBListener, LBSpec

from .conftest import IMAGE, Meta, until
from .emulated import InProcessEmulator, running

HOME = "e2e-slb-home"


class Directory:
    """The VPC API's directory as a dict: filled once the sandbox's local VPC exists."""

    def __init__(self):
        self.keys: dict[str, str] = {}
        self.vswitches: dict[str, dict] = {}

    def local_key(self, vpc_id, account=None):
        return self.keys.get(vpc_id)

    def vswitch(self, vsw_id, account=None):
        return self.vswitches.get(vsw_id)


class SlbEmulator(InProcessEmulator):
    suffix = "s"

    def services(self) -> list:
        self.directory = Directory()
        self.lbs = LocalLoadBalancers(self.provider.vpcs, self.home_id)
        self.slb = SlbService(self.directory, EciServers(self.eci), LocalLbBackend(self.lbs))
        return [self.slb]


@pytest.fixture(scope="module")
def emu(meta: Meta, tmp_path_factory):
    with running(SlbEmulator, meta, tmp_path_factory.mktemp("slb-emulator")) as e:
        yield e


def fetch(address: str, port: int) -> str | None:
    """The page served at address:port from this host, None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}:{port}/", timeout=3) as resp:
            return resp.read().decode()
    except (OSError, ValueError):
        return None


def refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return False
    except OSError:
        return True


def test_slbs_made_through_the_sdk_forward_to_a_real_sandbox(emu: SlbEmulator):
    cluster, token = str(uuid.uuid4()), uuid.uuid4().hex
    gid = emu.call(CreateContainerGroupRequest(), ContainerGroupName="e2e-slb-web", SecurityGroupId="sg-e2e",
                   VSwitchId="vsw-pods", TerminationGracePeriodSeconds="0", **{
                       "Container.1.Name": "web", "Container.1.Image": IMAGE,
                       "Container.1.ImagePullPolicy": "IfNotPresent", "Container.1.Command.1": "sh",
                       "Container.1.Command.2": "-c",
                       "Container.1.Arg.1": f"mkdir -p /www && echo {token} > /www/index.html && "
                                            "exec httpd -f -p 8080 -h /www",
                       "Container.1.ReadinessProbe.TcpSocket.Port": "8080", "Container.1.ReadinessProbe.PeriodSeconds": "1",
                       "Tag.1.Key": "sk8s.io/home", "Tag.1.Value": HOME,
                       "Tag.2.Key": "sk8s.io/cluster-uid", "Tag.2.Value": cluster})["ContainerGroupId"]

    def ready():
        found = emu.call(DescribeContainerGroupsRequest(), ContainerGroupIds=json.dumps([gid]))["ContainerGroups"]
        g = found[0] if found else {}
        return g if g.get("Status") == "Running" and all(c["Ready"] for c in g["Containers"]) else None
    ip = until(ready, 120, "the group running and ready")["IntranetIp"]
    vpc = emu.submit(emu.provider.vpcs.find(cluster))
    assert vpc is not None and ip in [str(a) for a in vpc.layout.pod_range]
    emu.directory.keys["vpc-e2e"] = cluster
    emu.directory.vswitches.update({"vsw-pods": {"VpcId": "vpc-e2e", "CidrBlock": str(vpc.layout.pod_range)},
                                    "vsw-svc": {"VpcId": "vpc-e2e", "CidrBlock": str(vpc.layout.service_range)}})
    cluster_ip = vpc.layout.service_addresses()[9]
    network = SimpleNamespace(vpc_id="vpc-e2e", service_vswitch_id="vsw-svc")

    async def find_network(client, home, uid):
        return network if uid == cluster else None
    client = emu.client()
    lbs = AliyunLoadBalancers(client, HOME, find_network=find_network, health_interval=0.5)
    http, closed = LBListener("TCP", 80, 8080), LBListener("TCP", 81, 9999)
    intranet = LBSpec(str(uuid.uuid4()), "intranet", cluster, [http], [ip], load_balancer_ip=cluster_ip)
    internet = LBSpec(str(uuid.uuid4()), "internet", cluster, [http, closed], [ip])

    async def scenario():
        inside = await lbs.ensure(intranet, None)
        outside = await lbs.ensure(internet, None)
        assert inside.address == cluster_ip and outside.address.startswith("127.")
        assert (await asyncio.to_thread(fetch, cluster_ip, 80) or "").strip() == token
        assert (await asyncio.to_thread(fetch, outside.address, 80) or "").strip() == token
        deadline = time.monotonic() + 30  # the local checks run every second; the poll every 0.5 s
        while time.monotonic() < deadline:
            health = {(b.port, b.healthy) for b in lbs.state(internet.id).backends}
            if health == {(8080, True), (9999, False)}:
                break
            await asyncio.sleep(0.5)
        assert health == {(8080, True), (9999, False)}
        assert lbs.state(internet.id).listeners == [(http, 1), (closed, 0)]
        await lbs.delete(intranet.id, cluster_ip, cluster)
        await lbs.delete(internet.id, outside.address, cluster)
        await lbs.close()
        return outside.address

    public = asyncio.run(scenario())
    assert refused(cluster_ip, 80) and refused(public, 80)
    assert emu.slb.lbs == {}
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)
    emu.submit(emu.provider.release_cluster(cluster))
