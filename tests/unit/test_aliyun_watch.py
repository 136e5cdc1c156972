"""The aliyun provider's watch reports every change it records, whoever's describe saw it:
the SandboxPod operator writes status only from what the watch yields, so a change taken
in silently (by an inspect's sweep, or by a round whose next call failed) left a pod
Pending for ever while its group ran."""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from operators.providers.aliyun.describe_pacing import DescribePacing
from operators.providers.errors import ProviderError

from .emulatorkit import EmulatorThread
from .test_aliyun_provider import LABELS, SPEC, groups, provider_for, ref, until_state


@pytest.fixture
def emulator():
    emu = EmulatorThread(schedule_delay=0.05, start_delay=0.05, tick=0.02)
    yield emu
    emu.stop()


async def test_a_change_seen_outside_the_watch_is_still_reported(emulator):
    provider = provider_for(emulator)
    r = ref(300)
    await provider.ensure(r, SPEC, LABELS)
    await until_state(provider, r, "running")  # its own sweeps saw the group run
    watch = provider.watch()
    try:
        assert await asyncio.wait_for(watch.__anext__(), 5) == r
    finally:
        await watch.aclose()


@pytest.mark.parametrize("seed", [3, 5])
async def test_under_faults_the_watch_brings_every_kept_pod_to_running(seed):
    """As the operator drives it: ensures retried on errors, half the pods deleted while
    the others start, a status written from `inspect` for each ref the watch yields."""
    emu = EmulatorThread(schedule_delay=0.3, start_delay=0.3, tick=0.05)
    try:
        emu.control("faults", {"throttle_rate": 0.3, "error_rate": 0.1, "drop_rate": 0.05, "seed": seed})
        provider = provider_for(emu, attempts=4)
        provider.busy_interval, provider.idle_interval = 0.5, 5.0  # the operator's pacing
        provider.pacing = DescribePacing(0.5, 5.0)
        status: dict = {}
        queue: asyncio.Queue = asyncio.Queue()

        async def refresh():
            while True:
                r = await queue.get()
                inst = await provider.inspect(r)
                if inst is not None:
                    status[r] = inst.state

        async def watch():
            async for r in provider.watch():
                queue.put_nowait(r)

        refs = [ref(200 + i) for i in range(30)]
        doomed = set(refs[::2])
        rng = random.Random(seed)

        async def life(r):
            for attempt in range(30):
                try:
                    await provider.ensure(r, SPEC, LABELS)
                    break
                except ProviderError:
                    await asyncio.sleep(0.1 * (attempt + 1))
            queue.put_nowait(r)  # the create handler's own refresh
            if r in doomed:
                await asyncio.sleep(rng.random())
                for _ in range(30):
                    try:
                        return await provider.delete(r, 0)
                    except ProviderError:
                        await asyncio.sleep(0.2)

        tasks = [asyncio.create_task(refresh()) for _ in range(4)] + [asyncio.create_task(watch())]
        try:
            await asyncio.gather(*(life(r) for r in refs))
            kept = [r for r in refs if r not in doomed]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(status.get(r) != "running" for r in kept):
                await asyncio.sleep(0.2)
            running = {g["ContainerGroupName"] for g in groups(emu) if g["Status"] == "Running"}
            assert {r.name: status.get(r) for r in kept if status.get(r) != "running"} == {}
            assert {r.instance_name for r in kept} <= running
        finally:
            for t in tasks:
                t.cancel()
    finally:
        emu.stop()
