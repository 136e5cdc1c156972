"""The emulator's UpdateContainerGroup through the real SDK (aliyunsdkeci's request class):
the group goes Updating, then Running; new images restart their containers (restart count
+1, the new image shown); new ConfigFileVolume files reach the backend; the cloud's
checks (status, unknown names and ids, UpdateType) and ClientToken idempotency."""
from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.UpdateContainerGroupRequest import UpdateContainerGroupRequest

from operators.emulator.alibaba.eci_update import apply_update

from .emulatorkit import EmulatorThread, group_params, until


@pytest.fixture
def emu():
    e = EmulatorThread(schedule_delay=0.05, tick=0.02)
    yield e
    e.stop()


def group_of(emu: EmulatorThread, gid: str) -> dict:
    (g,) = emu.call(DescribeContainerGroupsRequest(), ContainerGroupIds=f'["{gid}"]')["ContainerGroups"]
    return g


def running(emu: EmulatorThread, **extra) -> str:
    gid = emu.call(CreateContainerGroupRequest(), **group_params(**extra))["ContainerGroupId"]
    until(lambda: group_of(emu, gid)["Status"] == "Running")
    return gid


def update(emu: EmulatorThread, **params) -> dict:
    return emu.call(UpdateContainerGroupRequest(), **params)


def refused(call) -> ServerException:
    with pytest.raises(ServerException) as e:
        call()
    return e.value


def test_a_new_image_restarts_its_container_and_the_group_is_running_again(emu):
    gid = running(emu, **{"Container.2.Name": "side", "Container.2.Image": "busybox"})
    statuses = []
    emu.submit(_pause_backend(emu))  # the update's Updating is seen before the backend finishes
    update(emu, ContainerGroupId=gid, **{"Container.1.Name": "main", "Container.1.Image": "busybox:v2"},
           ClientToken="sk8s-upd-1")
    statuses.append(group_of(emu, gid)["Status"])
    emu.submit(_resume_backend(emu))
    g = until(lambda: (g := group_of(emu, gid))["Status"] == "Running" and g)
    assert statuses == ["Updating"]
    main, side = (next(c for c in g["Containers"] if c["Name"] == n) for n in ("main", "side"))
    assert main["Image"] == "busybox:v2" and main["RestartCount"] == 1 and main["PreviousState"]["ExitCode"] == 137
    assert side["Image"] == "busybox" and side["RestartCount"] == 0
    assert emu.backend.updates == [(gid, ["main"], [])]
    assert any(e["Reason"] == "Updating" for e in g["Events"])


async def _pause_backend(emu):
    import asyncio
    emu.gate = asyncio.Event()
    real = emu.backend.update

    async def gated(*args):
        await emu.gate.wait()
        await real(*args)
    emu.backend.update = gated


async def _resume_backend(emu):
    emu.gate.set()


def test_the_same_client_token_updates_once_and_another_change_under_it_is_refused(emu):
    gid = running(emu)
    params = {"ContainerGroupId": gid, "Container.1.Name": "main", "Container.1.Image": "busybox:v2",
              "ClientToken": "sk8s-upd-2"}
    update(emu, **params)
    until(lambda: group_of(emu, gid)["Status"] == "Running")
    update(emu, **params)  # a retry after a lost answer
    assert len(emu.backend.updates) == 1 and group_of(emu, gid)["Status"] == "Running"
    e = refused(lambda: update(emu, **{**params, "Container.1.Image": "busybox:v3"}))
    assert (e.get_http_status(), e.get_error_code()) == (400, "IdempotentParameterMismatch")


def test_new_config_file_contents_reach_the_backend_without_a_restart(emu):
    gid = running(emu, **{"Volume.1.Name": "cfg", "Volume.1.Type": "ConfigFileVolume",
                          "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a",
                          "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": "b2xk"})
    update(emu, ContainerGroupId=gid, UpdateType="IncrementalUpdate",
           **{"Volume.1.Name": "cfg", "Volume.1.Type": "ConfigFileVolume",
              "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a",
              "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": "bmV3"})
    g = until(lambda: (g := group_of(emu, gid))["Status"] == "Running" and g)
    assert emu.backend.updates == [(gid, [], ["cfg"])]
    assert g["Containers"][0]["RestartCount"] == 0


def test_what_the_cloud_refuses(emu):
    gid = running(emu)
    cases = [
        ({}, 400, "MissingParameter"),
        ({"ContainerGroupId": "eci-nosuchgroup00000000"}, 404, "InvalidParameter.NotFound"),
        ({"ContainerGroupId": gid, "UpdateType": "Sideways"}, 400, "InvalidParameter"),
        ({"ContainerGroupId": gid, "RestartPolicy": "Sometimes"}, 400, "InvalidParameter"),
        ({"ContainerGroupId": gid, "Container.1.Name": "ghost", "Container.1.Image": "x"}, 400, "InvalidParameter"),
        ({"ContainerGroupId": gid, "Container.1.Name": "main", "Container.1.Image": ""}, 400, "MissingParameter"),
        ({"ContainerGroupId": gid, "Cpu": "4"}, 400, "InvalidParameter"),
    ]
    for params, status, code in cases:
        e = refused(lambda: update(emu, **params))
        assert (e.get_http_status(), e.get_error_code()) == (status, code), params
    assert emu.backend.updates == []


def test_only_a_pending_or_running_group_is_updated():
    group = {"ContainerGroupId": "eci-1", "Container": [{"Name": "main", "Image": "a"}]}
    flat = {"ContainerGroupId": "eci-1", "Container.1.Name": "main", "Container.1.Image": "b"}
    for status in ("Scheduling", "Updating", "Restarting", "Succeeded", "Failed"):
        with pytest.raises(Exception, match="IncorrectStatus"):
            apply_update(group, status, flat)
    new, images, volumes = apply_update(group, "Pending", flat)
    assert new["Container"] == [{"Name": "main", "Image": "b"}] and images == ["main"] and volumes == []
    assert group["Container"][0]["Image"] == "a"  # the record's group is not changed under it


def test_renew_update_takes_the_lists_given_whole():
    group = {"Container": [{"Name": "main", "Image": "a", "Command": ["sleep"]}],
             "Volume": [{"Name": "v1", "Type": "EmptyDirVolume"}]}
    new, images, _ = apply_update(group, "Running", {"ContainerGroupId": "eci-1", "UpdateType": "RenewUpdate",
                                                     "Container.1.Name": "main", "Container.1.Image": "b"})
    assert new["Container"] == [{"Name": "main", "Image": "b"}] and new["Volume"] == [] and images == ["main"]
    new, _, _ = apply_update(group, "Running", {"ContainerGroupId": "eci-1", "Container.1.Name": "main",
                                                "Container.1.Image": "b"})
    assert new["Container"] == [{"Name": "main", "Image": "b", "Command": ["sleep"]}]
    assert new["Volume"] == group["Volume"]
