"""The aliyun provider's in-place changes: the pure UpdateContainerGroup builders, and
change_images / write_volumes against the emulator through the real SDK."""
from __future__ import annotations

import asyncio
import base64

import pytest

from operators.models.podspec import PodSpec
from operators.providers.aliyun.eci_update import (build_image_update_params, build_volume_update_params,
                                                   image_changes, update_token, volume_digests)
from operators.providers.errors import ProviderError

from .emulatorkit import REGION, EmulatorThread, until
from .test_aliyun_provider import LABELS, groups, provider_for, ref, until_state

SPEC = PodSpec.model_validate({
    "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}],
    "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}, {"name": "tmp", "emptyDir": {}}]})
CONTENT = {"cfg": {"greeting": (b"hello", 0o644)}}


def swapped(spec: PodSpec, **images: str) -> PodSpec:
    return spec.model_copy(update={"containers": [c.model_copy(update={"image": images.get(c.name, c.image)})
                                                  for c in spec.containers]})


def test_image_changes_are_the_containers_whose_image_differs_from_the_groups():
    group = {"Containers": [{"Name": "app", "Image": "busybox"}, {"Name": "side", "Image": "busybox"}]}
    assert image_changes(SPEC, group) == {}
    assert image_changes(swapped(SPEC, side="busybox:v2"), group) == {"side": "busybox:v2"}


def test_image_update_params_name_only_the_changed_containers_with_a_token_of_the_change():
    params = build_image_update_params(ref(1), "eci-1", REGION, {"side": "busybox:v2"})
    assert {k: v for k, v in params.items() if k != "ClientToken"} == {
        "RegionId": REGION, "ContainerGroupId": "eci-1", "UpdateType": "IncrementalUpdate",
        "Container.1.Name": "side", "Container.1.Image": "busybox:v2"}
    token = params["ClientToken"]
    assert token.startswith(f"sk8s-{ref(1).uid}-") and len(token) <= 64 and token.isascii()
    assert token == build_image_update_params(ref(1), "eci-1", REGION, {"side": "busybox:v2"})["ClientToken"]
    assert token != build_image_update_params(ref(1), "eci-1", REGION, {"side": "busybox:v3"})["ClientToken"]
    assert token != update_token(ref(2), {k: v for k, v in params.items() if k != "ClientToken"})


def test_volume_update_params_carry_the_named_volumes_files_as_config_file_volumes():
    params = build_volume_update_params(ref(1), "eci-1", REGION, SPEC, {"cfg": {"greeting": (b"hi", 0o600)}}, ["cfg"])
    assert params["Volume.1.Name"] == "cfg" and params["Volume.1.Type"] == "ConfigFileVolume"
    assert params["Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"] == "greeting"
    assert base64.b64decode(params["Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"]) == b"hi"
    assert params["Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode"] == "0600"
    assert not any(k.startswith("Volume.2.") for k in params)  # the emptyDir is not sent again
    emptied = build_volume_update_params(ref(1), "eci-1", REGION, SPEC, {"cfg": {}}, ["cfg"])
    assert emptied["Volume.1.Type"] == "EmptyDirVolume"  # an optional source gone: an empty directory


def test_volume_digests_change_with_the_files_only():
    assert volume_digests(SPEC, CONTENT) == volume_digests(SPEC, {"cfg": {"greeting": (b"hello", 0o644)}})
    assert volume_digests(SPEC, CONTENT) != volume_digests(SPEC, {"cfg": {"greeting": (b"hello!", 0o644)}})
    assert set(volume_digests(SPEC, CONTENT)) == {"cfg"}


@pytest.fixture
def emulator():
    emu = EmulatorThread(schedule_delay=0.05, start_delay=0.05, tick=0.02)
    yield emu
    emu.stop()


async def test_change_images_restarts_the_changed_container_once(emulator):
    provider = provider_for(emulator)
    await provider.prepare_volumes(ref(1), SPEC, LABELS, CONTENT)
    await provider.ensure(ref(1), SPEC, LABELS)
    await until_state(provider, ref(1), "running")
    new = swapped(SPEC, app="busybox:v2")
    assert await provider.change_images(ref(1), new, LABELS) == ["app"]
    with pytest.raises(ProviderError) as e:  # the group is Updating: the caller tries again
        await provider.change_images(ref(1), swapped(SPEC, app="busybox:v3"), LABELS)
    assert e.value.retryable and e.value.reason == "IncorrectStatus"
    assert await provider.change_images(ref(1), new, LABELS) == []  # under way already

    async def restarted():
        await provider.sweep()
        inst = await provider.inspect(ref(1))
        app = next(c for c in inst.containers if c.name == "app")
        return (provider._known[ref(1)].group["Status"] == "Running" and app.restart_count == 1
                and app.image == "busybox:v2")
    for _ in range(200):
        if await restarted():
            break
        await asyncio.sleep(0.05)
    assert await restarted()
    assert await provider.change_images(ref(1), new, LABELS) == []  # idempotent: nothing left to change
    assert [u[1] for u in emulator.backend.updates] == [["app"]]


async def test_write_volumes_sends_changed_files_once_and_waits_for_an_update_under_way(emulator):
    provider = provider_for(emulator)
    await provider.prepare_volumes(ref(1), SPEC, LABELS, CONTENT)
    gid = await provider.ensure(ref(1), SPEC, LABELS)
    assert await provider.write_volumes(ref(1), SPEC, CONTENT) == []  # what the group was created with
    await until_state(provider, ref(1), "running")
    await provider.change_images(ref(1), swapped(SPEC, side="busybox:v2"), LABELS)  # Updating now
    changed = {"cfg": {"greeting": (b"bonjour", 0o644)}}
    assert await provider.write_volumes(ref(1), SPEC, changed) == ["cfg"]
    assert await provider.write_volumes(ref(1), SPEC, changed) == []
    await asyncio.to_thread(until, lambda: len(emulator.backend.updates) == 2)
    assert [(u[0], u[2]) for u in emulator.backend.updates] == [(gid, []), (gid, ["cfg"])]
    await asyncio.to_thread(until, lambda: groups(emulator)[0]["Status"] == "Running")


async def test_files_changed_before_the_group_exists_go_with_its_create(emulator):
    provider = provider_for(emulator)
    await provider.prepare_volumes(ref(1), SPEC, LABELS, CONTENT)
    assert await provider.write_volumes(ref(1), SPEC, {"cfg": {"greeting": (b"later", 0o644)}}) == []
    await provider.ensure(ref(1), SPEC, LABELS)
    await until_state(provider, ref(1), "running")
    assert emulator.backend.updates == []
    (record,) = emulator.eci.groups.values()
    (volume,) = [v for v in record.group["Volume"] if v["Name"] == "cfg"]
    assert base64.b64decode(volume["ConfigFileVolume"]["ConfigFileToPath"][0]["Content"]) == b"later"


async def test_a_group_that_does_not_exist_is_a_retryable_not_found(emulator):
    provider = provider_for(emulator)
    with pytest.raises(ProviderError) as e:
        await provider.change_images(ref(9), SPEC, LABELS)
    assert e.value.reason == "NotFound" and e.value.retryable
