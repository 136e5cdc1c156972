"""PrivateZone on the emulator's local data plane, end to end through the real SDK: the aliyun
provider makes a tenant's network (VPC, VSwitches, security group: the emulator's VPC module
makes the VPC a local VPC network) and its zone (AddZone, records, BindZoneVpc to that VPC);
a container group that is a real sandbox in the VPC resolves the zone's names through the
VPC resolver; deleting the zone stops the answers.

The emulator runs in this process (its loop in a thread) with an installation id of its
own, as test_emulator_podman.py's does, torn down at the end."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest

from operators.config import home_id
from operators.emulator.alibaba import pvtz, server
from operators.emulator.alibaba.eci import EciService
from operators.emulator.alibaba.networking import networking
from operators.emulator.alibaba.podman_backend import PodmanBackend
from operators.providers.aliyun import network
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.pvtz import AliyunPrivateZones
from operators.providers.local.provider import LocalProvider
from operators.providers.local.streams import LocalStreams

from .conftest import IMAGE, Meta

AK, SK, REGION, ZONE = "LTAI-e2e", "e2e-secret", "cn-hangzhou", "cn-hangzhou-h"
ADDRESS = "10.77.0.7"  # what the record answers: any address does, nothing connects to it


class PvtzEmulator:
    def __init__(self, meta: Meta, tmp):
        conf = str(meta.home / "containers.conf")
        self.home_id = home_id(meta.home) + "z"
        self.provider = LocalProvider(home_id=self.home_id, containers_conf=conf, state_dir=tmp / "kubelet")
        self.backend = PodmanBackend(self.provider, LocalStreams(containers_conf=conf))
        self.eci = EciService(self.backend, schedule_delay=0.2, tick=0.2)
        vpc, ecs = networking(self.eci, self.backend, settle=0.2)
        self.pvtz = pvtz.for_groups(self.backend, vpc)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        emulator = server.Emulator({AK: SK}, [self.eci, vpc, ecs, self.pvtz])
        self.runner, self.port = self.submit(server.serve(emulator, "127.0.0.1", 0))

    def submit(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def stop(self) -> None:
        try:
            self.submit(self.runner.cleanup())
            self.submit(self.backend.close())
            self.submit(self.provider.teardown(), timeout=300)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def client(self) -> AliyunClient:
        return AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{self.port}")

    def call(self, request, **params) -> dict:
        request.set_endpoint(f"127.0.0.1:{self.port}")
        request.set_protocol_type("http")
        for key, value in params.items():
            request.add_query_param(key, value)
        client = AcsClient(AK, SK, REGION, auto_retry=False, proxy={"http": None, "https": None})
        return json.loads(client.do_action_with_exception(request))


@pytest.fixture(scope="module")
def emu(meta: Meta, tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("SK8S_HOME", "CONTAINERS_CONF")}
    os.environ.update(SK8S_HOME=str(meta.home), CONTAINERS_CONF=str(meta.home / "containers.conf"))
    e = PvtzEmulator(meta, tmp_path_factory.mktemp("pvtz-emulator"))
    try:
        yield e
    finally:
        e.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
