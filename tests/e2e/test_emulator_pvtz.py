"""PrivateZone on the emulator's local data plane, end to end through the real SDK: the aliyun
provider makes a tenant's network (VPC, VSwitches, security group: the emulator's VPC module
makes the VPC a local VPC network) and its zone (AddZone, records, BindZoneVpc to that VPC);
a container group that is a real sandbox in the VPC resolves the zone's names through the
VPC resolver; deleting the zone stops the answers.

The emulator runs in this process with an installation id of its own (emulated.py)."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest

from operators.emulator.alibaba import pvtz
from operators.emulator.alibaba.networking import networking
from operators.providers.aliyun import network
from operators.providers.aliyun.pvtz import AliyunPrivateZones

from .conftest import IMAGE, Meta
from .emulated import InProcessEmulator, running

ZONE = "cn-hangzhou-h"
ADDRESS = "10.77.0.7"  # what the record answers: any address does, nothing connects to it


class PvtzEmulator(InProcessEmulator):
    suffix = "z"

    def services(self) -> list:
        vpc, ecs = networking(self.eci, self.backend, settle=0.2)
        self.pvtz = pvtz.for_groups(self.backend, vpc)
        return [vpc, ecs, self.pvtz]


@pytest.fixture(scope="module")
def emu(meta: Meta, tmp_path_factory):
    with running(PvtzEmulator, meta, tmp_path_factory.mktemp("pvtz-emulator")) as e:
        yield e


async def logs_until(emu: PvtzEmulator, gid: str, predicate, timeout: float = 90) -> str:
    """The group's last lines once its last line satisfies predicate."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    text = ""
    while loop.time() < deadline:
        text = (await asyncio.to_thread(emu.call, DescribeContainerLogRequest(), ContainerGroupId=gid,
                                        ContainerName="dig", Tail="3"))["Content"]
        lines = text.strip().splitlines()
        if lines and predicate(lines[-1]):
            return text
        await asyncio.sleep(1)
    raise AssertionError(f"the sandbox's output not as expected within {timeout}s:\n{text}")


def test_a_zone_bound_to_a_vpc_answers_its_records_to_a_sandbox_in_it(emu: PvtzEmulator):
    cluster = str(uuid.uuid4())
    zone_uid = str(uuid.uuid4())
    client = emu.client()
    zones = AliyunPrivateZones(client, emu.home_id)  # the VPC found by the network's tags
    records = [{"rr": "web.default.svc", "type": "A", "values": [ADDRESS], "ttl": 5}]

    async def main():
        cidr = await emu.provider.reserve_network(f"e2e pvtz {cluster}")
        net = await network.ensure_network(client, emu.home_id, cluster, cidr, zone_id=ZONE)
        resolvers = await zones.ensure(zone_uid, "cluster.local", [cluster], records)
        assert resolvers == [net.resolver]
        gid = (await asyncio.to_thread(
            emu.call, CreateContainerGroupRequest(), ContainerGroupName="e2e-pvtz-dig", VSwitchId=net.pod_vswitch_id,
            SecurityGroupId=net.security_group_id, TerminationGracePeriodSeconds="0", **{
                "Container.1.Name": "dig", "Container.1.Image": IMAGE, "Container.1.ImagePullPolicy": "IfNotPresent",
                "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
                "Container.1.Arg.1": "grep nameserver /etc/resolv.conf; while true; do "
                                     "out=$(nslookup web.default.svc.cluster.local 2>&1); case \"$out\" in "
                                     f"*{ADDRESS}*) echo answered {ADDRESS};; *) echo no answer;; esac; sleep 1; done",
            }))["ContainerGroupId"]
        try:
            await logs_until(emu, gid, lambda last: last == f"answered {ADDRESS}")
            full = (await asyncio.to_thread(emu.call, DescribeContainerLogRequest(), ContainerGroupId=gid,
                                            ContainerName="dig"))["Content"]
            assert full.startswith(f"nameserver {net.resolver}"), full[:300]
            await zones.delete(zone_uid)  # unbound and deleted: the name is no longer answered
            assert emu.pvtz.inventory()["PrivateZone"] == []
            await logs_until(emu, gid, lambda last: last == "no answer")
        finally:
            await asyncio.to_thread(emu.call, DeleteContainerGroupRequest(), ContainerGroupId=gid)
            await zones.delete(zone_uid)
            for _ in range(60):  # the group's sandbox drains, then the network goes
                try:
                    await network.delete_network(client, emu.home_id, cluster)
                    break
                except Exception:  # DependencyViolation while the group is still listed
                    await asyncio.sleep(1)

    asyncio.run(main())
