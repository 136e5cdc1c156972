"""The Alibaba OpenAPI emulator with real sandboxes: container groups created through the
real SDK run as local-provider podman pods on this host, report their states, addresses,
exits and logs through DescribeContainerGroups / DescribeContainerLog, join a tenant VPC
when tagged with a cluster, and are gone from podman after DeleteContainerGroup.

The emulator runs in this process with an installation id of its own (emulated.py)."""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import time
import uuid

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest

from operators.models.podspec import PodSpec
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.eci_spec import EciPlacement
from operators.providers.aliyun.provider import AliyunProvider
from operators.providers.sandbox import SandboxRef

from .conftest import IMAGE, Meta
from .emulated import AK, REGION, SK, InProcessEmulator, running

class PodmanEmulator(InProcessEmulator):
    """ECI alone, with helpers for its groups."""

    def create(self, name: str, **params: str) -> str:
        return self.call(CreateContainerGroupRequest(), ContainerGroupName=name, SecurityGroupId="sg-e2e",
                         VSwitchId="vsw-e2e", **params)["ContainerGroupId"]

    def group(self, gid: str) -> dict | None:
        found = self.call(DescribeContainerGroupsRequest(), ContainerGroupIds=json.dumps([gid]))["ContainerGroups"]
        return found[0] if found else None

    def wait(self, gid: str, predicate, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        group = None
        while time.monotonic() < deadline:
            group = self.group(gid)
            if group is not None and predicate(group):
                return group
            time.sleep(0.3)
        raise AssertionError(f"group {gid} not as expected within {timeout}s: {json.dumps(group, indent=1)}")

    def logs(self, gid: str, container: str, **params: str) -> str:
        return self.call(DescribeContainerLogRequest(), ContainerGroupId=gid, ContainerName=container,
                         **params)["Content"]


@pytest.fixture(scope="module")
def emu(meta: Meta, tmp_path_factory):
    with running(PodmanEmulator, meta, tmp_path_factory.mktemp("emulator")) as e:
        yield e


def container(group: dict, name: str) -> dict:
    return next(c for c in group["Containers"] + group["InitContainers"] if c["Name"] == name)


def pod_of(meta: Meta, name_filter: str) -> list[dict]:
    out = meta.podman("pod", "ps", "--format=json", f"--filter=name={name_filter}")
    return json.loads(out.stdout or "[]")


def pod_ip(meta: Meta, pod: str) -> str:
    infra = json.loads(meta.podman("pod", "inspect", pod).stdout)
    infra = infra[0] if isinstance(infra, list) else infra
    data = json.loads(meta.podman("container", "inspect", infra["InfraContainerID"]).stdout)[0]
    return next(n["IPAddress"] for n in data["NetworkSettings"]["Networks"].values())


def test_a_group_runs_as_a_sandbox_with_its_files_env_and_logs(emu: PodmanEmulator, meta: Meta):
    conf = base64.b64encode(b"greeting=hello from a config file\n").decode()
    gid = emu.create("e2e-web", RestartPolicy="Always", TerminationGracePeriodSeconds="1", **{
        "Container.1.Name": "web", "Container.1.Image": IMAGE, "Container.1.ImagePullPolicy": "IfNotPresent",
        "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
        "Container.1.Arg.1": "cat /etc/app/app.conf; echo \"mode=$MODE ip=$POD_IP\"; exec httpd -f -p 8080 -h /www",
        "Container.1.EnvironmentVar.1.Key": "MODE", "Container.1.EnvironmentVar.1.Value": "emulated",
        "Container.1.EnvironmentVar.2.Key": "POD_IP", "Container.1.EnvironmentVar.2.FieldRef.FieldPath": "status.podIP",
        "Container.1.Port.1.Port": "8080", "Container.1.Port.1.Protocol": "TCP",
        "Container.1.ReadinessProbe.TcpSocket.Port": "8080", "Container.1.ReadinessProbe.PeriodSeconds": "1",
        "Container.1.VolumeMount.1.Name": "cfg", "Container.1.VolumeMount.1.MountPath": "/etc/app",
        "Volume.1.Name": "cfg", "Volume.1.Type": "ConfigFileVolume",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "app.conf",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": conf})
    group = emu.wait(gid, lambda g: g["Status"] == "Running" and container(g, "web")["Ready"])
    pods = pod_of(meta, f"sk8s-{gid}")
    assert len(pods) == 1, pods  # a real podman pod, named by the group's id (its tags name no pod)
    ip = group["IntranetIp"]
    assert ip and ip == pod_ip(meta, pods[0]["Name"])
    logs = emu.logs(gid, "web")
    assert "greeting=hello from a config file" in logs and f"mode=emulated ip={ip}" in logs
    assert emu.logs(gid, "web", Tail="1").count("\n") == 1
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)
    assert emu.group(gid) is None
    deadline = time.monotonic() + 60
    while pod_of(meta, f"sk8s-{gid}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pod_of(meta, f"sk8s-{gid}") == []


def test_exits_follow_the_restart_policy_and_init_containers_run_first(emu: PodmanEmulator):
    gid = emu.create("e2e-job", RestartPolicy="Never", TerminationGracePeriodSeconds="0", **{
        "InitContainer.1.Name": "prepare", "InitContainer.1.Image": IMAGE,
        "InitContainer.1.ImagePullPolicy": "IfNotPresent", "InitContainer.1.Command.1": "true",
        "Container.1.Name": "job", "Container.1.Image": IMAGE, "Container.1.ImagePullPolicy": "IfNotPresent",
        "Container.1.Command.1": "sh", "Container.1.Command.2": "-c", "Container.1.Command.3": "echo failing; exit 3"})
    group = emu.wait(gid, lambda g: g["Status"] in ("Failed", "Succeeded"))
    assert group["Status"] == "Failed"
    job, prepare = container(group, "job"), container(group, "prepare")
    assert job["CurrentState"]["State"] == "Terminated" and job["CurrentState"]["ExitCode"] == 3
    assert prepare["CurrentState"]["State"] == "Terminated" and prepare["CurrentState"]["ExitCode"] == 0
    assert job["RestartCount"] == 0
    assert "failing" in emu.logs(gid, "job")
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)


def test_a_group_of_a_cluster_runs_in_that_clusters_vpc(emu: PodmanEmulator, meta: Meta):
    cluster_uid = str(uuid.uuid4())
    uid = str(uuid.uuid4())
    gid = emu.create(f"sk8s-{uid}", TerminationGracePeriodSeconds="0", **{
        "Container.1.Name": "app", "Container.1.Image": IMAGE, "Container.1.ImagePullPolicy": "IfNotPresent",
        "Tag.1.Key": "sk8s.io/cluster-uid", "Tag.1.Value": cluster_uid,
        "Tag.2.Key": "sk8s.io/namespace", "Tag.2.Value": "tenant-e2e",
        "Tag.3.Key": "sk8s.io/name", "Tag.3.Value": "app-1", "Tag.4.Key": "sk8s.io/uid", "Tag.4.Value": uid})
    group = emu.wait(gid, lambda g: g["Status"] == "Running")
    assert pod_of(meta, f"sk8s-{uid}"), "the sandbox is the one the tags name"
    net = json.loads(meta.podman("network", "inspect", f"sk8s-{emu.home_id}-{cluster_uid[:12]}").stdout)
    net = net[0] if isinstance(net, list) else net
    subnet = ipaddress.ip_network(net["subnets"][0]["subnet"])
    assert ipaddress.ip_address(group["IntranetIp"]) in subnet
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)
    emu.submit(emu.provider.release_cluster(cluster_uid))


def test_an_image_that_cannot_be_had_keeps_the_group_pending(emu: PodmanEmulator):
    # Pull policy Never: no registry is asked, the failure is immediate and certain.
    gid = emu.create("e2e-nopull", **{"Container.1.Name": "app", "Container.1.ImagePullPolicy": "Never",
                                       "Container.1.Image": "localhost/sk8s-does-not-exist:1"})
    group = emu.wait(gid, lambda g: container(g, "app")["CurrentState"].get("Reason") == "ErrImageNeverPull")
    assert group["Status"] == "Pending" and group["IntranetIp"] == ""
    assert "sk8s-does-not-exist" in container(group, "app")["CurrentState"]["Message"]
    emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid)


def test_what_the_emulator_cannot_run_is_refused_by_name(emu: PodmanEmulator):
    with pytest.raises(ServerException) as e:
        emu.create("e2e-gpu", **{"Container.1.Name": "app", "Container.1.Image": IMAGE, "Container.1.Gpu": "1"})
    assert e.value.get_error_code() == "InvalidParameter" and "Container.1.Gpu" in e.value.get_error_msg()
    names = [g["ContainerGroupName"] for g in emu.call(DescribeContainerGroupsRequest())["ContainerGroups"]]
    assert "e2e-gpu" not in names


def test_the_aliyun_provider_runs_a_pod_on_this_host_through_the_emulator(emu: PodmanEmulator, meta: Meta):
    """The whole way: the aliyun provider's builder and SDK client, the emulator, a sandbox."""
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}")
    provider = AliyunProvider(client, EciPlacement(region_id=REGION, zone_id=None, vswitch_id="vsw-e2e",
                                                   security_group_id="sg-e2e", cluster_uid="", home_id="e2e-home"),
                              busy_interval=0.2, idle_interval=1.0)
    ref = SandboxRef("tenant-e2e", "web-1", str(uuid.uuid4()))
    spec = PodSpec.model_validate({"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "web", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", 'cat /cfg/greeting; echo "ip=$POD_IP"; exec httpd -f -p 80 -h /www'],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
        "volumes": [{"name": "cfg", "configMap": {"name": "greeting"}}]})

    async def scenario():  # one event loop for the provider's whole life
        await provider.setup()
        await provider.prepare_volumes(ref, spec, {}, {"cfg": {"greeting": (b"hello through ECI\n", 0o644)}})
        group_id = await provider.ensure(ref, spec, {})
        deadline = time.monotonic() + 90
        inst = None
        while time.monotonic() < deadline and not (inst and inst.state == "running" and inst.containers and inst.containers[0].ready):
            await asyncio.sleep(0.3)
            await provider.sweep()
            inst = await provider.inspect(ref)
        assert inst and inst.state == "running" and inst.containers and inst.containers[0].ready, inst
        assert pod_of(meta, ref.instance_name) and inst.ip == pod_ip(meta, ref.instance_name)
        logs = await asyncio.to_thread(emu.logs, group_id, "web")
        assert "hello through ECI" in logs and f"ip={inst.ip}" in logs
        await provider.delete(ref, 1)

    asyncio.run(scenario())
    deadline = time.monotonic() + 60
    while pod_of(meta, ref.instance_name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pod_of(meta, ref.instance_name) == []
