"""The aliyun provider's lifecycle side against the local OpenAPI emulator, through the
real SDK: create/inspect/list/delete, idempotency across a restart, and convergence under
throttling, server errors and answers lost after the request was applied."""
from __future__ import annotations

import asyncio
import time

import pytest

from operators.emulator.alibaba.faults import FaultConfig
from operators.models.podspec import PodSpec
from operators.providers.aliyun.client import AliyunClient, AliyunError, Credentials
from operators.providers.aliyun.eci_spec import EciPlacement
from operators.providers.aliyun.network import CloudNetwork
from operators.providers.aliyun.provider import AliyunProvider
from operators.providers.errors import ProviderError
from operators.providers.sandbox import SandboxRef

from .emulatorkit import AK, REGION, SK, EmulatorThread, until

SPEC = PodSpec.model_validate({"containers": [{"name": "app", "image": "busybox"}]})
LABELS = {"sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": "c-1"}


def placement(home: str = "home-1") -> EciPlacement:
    return EciPlacement(region_id=REGION, zone_id="cn-hangzhou-h", vswitch_id="vsw-1", security_group_id="sg-1",
                        cluster_uid="", home_id=home)


def ref(i: int) -> SandboxRef:
    return SandboxRef("tenant-a", f"pod-{i}", f"00000000-0000-4000-8000-{i:012d}")


@pytest.fixture
def emulator():
    emu = EmulatorThread(schedule_delay=0.05, start_delay=0.05, tick=0.02)
    yield emu
    emu.stop()


def provider_for(emu: EmulatorThread, *, secret: str = SK, home: str = "home-1", attempts: int = 8) -> AliyunProvider:
    client = AliyunClient(Credentials(AK, secret), REGION, endpoint=f"127.0.0.1:{emu.port}", attempts=attempts)
    provider = AliyunProvider(client, placement(home), busy_interval=0.05, idle_interval=0.2)
    # Cluster c-1's network as its serverlesscluster side made it (test_aliyun_network: that side).
    provider.networks.remember("c-1", CloudNetwork("vpc-1", "vsw-1", "vsw-2", "sg-1", "10.0.0.0/23"))
    return provider


async def until_state(provider: AliyunProvider, r: SandboxRef, state: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await provider.sweep()
        inst = await provider.inspect(r)
        if inst is not None and inst.state == state:
            return inst
        await asyncio.sleep(0.05)
    raise AssertionError(f"{r.name} not {state} within {timeout}s: {await provider.inspect(r)}")


def groups(emu: EmulatorThread) -> list[dict]:
    return emu.control("inventory")["ContainerGroup"]


async def test_a_sandbox_is_created_runs_is_listed_and_deleted(emulator):
    provider = provider_for(emulator)
    await provider.setup()
    gid = await provider.ensure(ref(1), SPEC, LABELS)
    inst = await provider.inspect(ref(1))
    assert inst is not None and inst.state == "creating" and inst.instance_id == gid  # before any sweep
    running = await until_state(provider, ref(1), "running")
    assert running.ip and running.containers[0].name == "app"
    assert await provider.list() == [ref(1)]
    tags = {t["Key"]: t["Value"] for t in groups(emulator)[0]["Tags"]}
    assert tags["sk8s.io/uid"] == ref(1).uid and tags["sk8s.io/cluster-uid"] == "c-1"
    await provider.delete(ref(1), 0)
    await provider.delete(ref(1), 0)  # idempotent
    assert await provider.inspect(ref(1)) is None
    await asyncio.to_thread(until, lambda: groups(emulator) == [])


async def test_another_installations_groups_are_not_seen(emulator):
    mine, theirs = provider_for(emulator), provider_for(emulator, home="home-2")
    await theirs.ensure(ref(2), SPEC, LABELS)
    assert await mine.list() == []
    assert await theirs.list() == [ref(2)]


async def test_a_restarted_operator_makes_no_second_group_and_takes_over(emulator):
    first = provider_for(emulator)
    gid = await first.ensure(ref(3), SPEC, LABELS)
    second = provider_for(emulator)  # a new process: nothing in memory
    assert await second.ensure(ref(3), SPEC, LABELS) == gid
    assert len(groups(emulator)) == 1
    third = provider_for(emulator)
    await third.setup()
    assert (await third.inspect(ref(3))).instance_id == gid


async def test_wrong_credentials_fail_each_sandbox_at_once_with_the_clouds_code(emulator):
    provider = provider_for(emulator, secret="not-the-secret")
    await provider.setup()  # logged: a restart would not fix it
    started = time.monotonic()
    with pytest.raises(AliyunError) as err:
        await provider.ensure(ref(4), SPEC, LABELS)
    assert err.value.code == "InvalidAccessKeySecret" and err.value.reason == "InvalidAccessKeySecret"
    assert "InvalidAccessKeySecret" in str(err.value) and "not-the-secret" not in str(err.value)
    assert time.monotonic() - started < 5  # not retried: no retry fixes a key
    assert groups(emulator) == []


async def test_under_faults_every_sandbox_runs_once_and_goes(emulator):
    """30 % throttled, 10 % 5xx, 5 % applied then dropped: every pod runs, exactly one group
    each, and after deletion nothing is left. A call that gives up is tried again, as the
    operator's handler would (kopf's TemporaryError)."""
    emulator.control("faults", {"throttle_rate": 0.3, "error_rate": 0.1, "drop_rate": 0.05, "seed": 7})
    provider = provider_for(emulator, attempts=4)
    refs = [ref(100 + i) for i in range(30)]

    async def persist(call):
        for _ in range(20):
            try:
                return await call()
            except ProviderError as err:
                assert err.retryable, err
                await asyncio.sleep(0.05)
        raise AssertionError("never went through")

    await asyncio.gather(*(persist(lambda r=r: provider.ensure(r, SPEC, LABELS)) for r in refs))
    for r in refs:
        await persist(lambda r=r: until_state(provider, r, "running"))
    injected = emulator.control("faults")["injected"]
    assert injected.get("Throttling.User", 0) > 5 and injected.get("Dropped", 0) > 0, injected
    names = [g["ContainerGroupName"] for g in groups(emulator)]
    assert sorted(names) == sorted(r.instance_name for r in refs)  # no duplicate, none missing
    await asyncio.gather(*(persist(lambda r=r: provider.delete(r, 0)) for r in refs))
    emulator.control("faults", {"throttle_rate": 0, "error_rate": 0, "drop_rate": 0})
    await asyncio.to_thread(until, lambda: groups(emulator) == [])  # none left behind
    assert await provider.list() == []


@pytest.mark.parametrize("labels", [{}, LABELS])
def test_what_the_provider_sends_the_emulators_real_sandboxes_take(labels):
    """An admin's SandboxPod (no cluster) and a tenant's: the builder's parameters pass the
    podman backend's admission (its tag checks and its reading of the group back)."""
    from operators.emulator.alibaba.params import unflatten
    from operators.emulator.alibaba.podman_backend import check_tags
    from operators.emulator.alibaba.eci_pod import pod_from_group
    from operators.providers.aliyun.eci_spec import build_create_params
    params = build_create_params(ref(5), SPEC, labels, placement(), {})
    group = unflatten({k: v for k, v in params.items() if k != "ClientToken"})
    check_tags(group)
    spec, _ = pod_from_group(group)
    assert [c.command for c in spec.containers] == [c.command for c in SPEC.containers]


async def test_names_the_cloud_reserves_in_tags_still_work(emulator):
    """A tag value may not start with "aliyun" or "acs:"; a SandboxPod (or cluster) may be
    named so: its tags carry the name escaped, and it reads back as itself."""
    provider = provider_for(emulator)
    r = SandboxRef("aliyun-team", "aliyun-web", "00000000-0000-4000-8000-000000000077")
    await provider.ensure(r, SPEC, {"sk8s.io/cluster": "aliyun-prod", "sk8s.io/cluster-uid": "c-1"})
    await until_state(provider, r, "running")
    assert await provider.list() == [r]


async def test_only_moving_groups_are_described_and_twenty_a_call(emulator):
    provider = provider_for(emulator)
    refs = [ref(200 + i) for i in range(25)]
    await asyncio.gather(*(provider.ensure(r, SPEC, LABELS) for r in refs))
    await asyncio.sleep(provider.pacing.first_delay())  # the time a new group takes, before any is learnt
    emulator.control("calls", method="DELETE")
    await provider.refresh_moving()
    assert emulator.control("calls")["calls"] == {"DescribeContainerGroups": 2}  # 25 moving: 20 + 5
    for r in refs:
        await until_state(provider, r, "running")
    await provider.refresh_moving()  # settled (the last sweep saw them Running)
    emulator.control("calls", method="DELETE")
    assert provider._moving() == []
    assert await provider.refresh_moving() == []
    assert emulator.control("calls")["calls"] == {}
