"""What the aliyun provider's status side costs in API calls, against the emulator through
the real SDK, with its watch running as the SandboxPod operator runs it: one pod at a
time and a burst of 20 each reach Running in at most 3 calls per pod overall, and the pods
are seen Running about as soon as with the old fixed schedule (a describe of every moving
group every busy_interval from its creation on), run in the same test."""
from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from operators.providers.aliyun.provider import AliyunProvider

from .emulatorkit import EmulatorThread
from .test_aliyun_provider import LABELS, SPEC, provider_for, ref

BUSY, IDLE = 0.1, 5.0


@pytest.fixture
def emulator():
    # A group leaves Scheduling after 0.3 s and its containers run 0.2 s after: ~0.55 s in all.
    emu = EmulatorThread(schedule_delay=0.3, start_delay=0.2, tick=0.02)
    yield emu
    emu.stop()


class Watched:
    """The provider with its watch running; when each ref was first seen running."""

    def __init__(self, emu: EmulatorThread, *, old_schedule: bool = False):
        self.emu = emu
        self.provider: AliyunProvider = provider_for(emu)
        self.provider.busy_interval = self.provider.pacing.busy_interval = BUSY
        self.provider.idle_interval = self.provider.pacing.idle_interval = IDLE
        if old_schedule:
            self.provider.pacing.first_max = self.provider.pacing.backoff = 0.0
        self.running: dict = {}
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "Watched":
        self.task = asyncio.create_task(self._watch())
        await asyncio.wait_for(self.provider._swept.wait(), 10)
        return self

    async def __aexit__(self, *_) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _watch(self) -> None:
        async for r in self.provider.watch():
            inst = await self.provider.inspect(r)
            if inst is not None and inst.state == "running":
                self.running.setdefault(r, time.time())

    async def start(self, r) -> tuple[float, float]:
        """Create r's group; the seconds until the watch saw it running, and from the
        emulator moving it to Running until then."""
        created = time.time()
        gid = await self.provider.ensure(r, SPEC, LABELS)
        deadline = time.monotonic() + 15
        while r not in self.running:
            assert time.monotonic() < deadline, f"{r.name} not seen running"
            await asyncio.sleep(0.005)
        return self.running[r] - created, self.running[r] - self.emu.eci.groups[gid].moved_at

    def reset_calls(self) -> None:
        self.emu.control("calls", method="DELETE")

    def calls(self) -> dict:
        return self.emu.control("calls")


async def one_by_one(emu: EmulatorThread, first: int, n: int, old_schedule: bool) -> tuple[list, dict]:
    async with Watched(emu, old_schedule=old_schedule) as w:
        await w.start(ref(first - 1))  # a first group to learn from, outside the figures
        w.reset_calls()
        lags = [await w.start(ref(first + i)) for i in range(n)]
        return lags, w.calls()


async def burst(emu: EmulatorThread, first: int, n: int, old_schedule: bool) -> tuple[list, dict]:
    async with Watched(emu, old_schedule=old_schedule) as w:
        await w.start(ref(first - 1))
        w.reset_calls()
        lags = await asyncio.gather(*(w.start(ref(first + i)) for i in range(n)))
        return list(lags), w.calls()


def no_slower(times: list, old_times: list) -> None:
    """Fewer calls do not cost the pods their start: create -> seen Running about as soon as
    with the old schedule, and each seen within a few intervals of the emulator's move. The
    bounds are loose on purpose (a unit test on shared cores); `make bench` measures it
    (bench/aliyun_start.py)."""
    mean, old_mean = (statistics.fmean(t for t, _ in ts) for ts in (times, old_times))
    assert mean <= 1.5 * old_mean + 0.3, (times, old_times)
    assert max(lag for _, lag in times) <= 10 * BUSY, times


async def test_one_pod_at_a_time_reaches_running_in_at_most_three_calls_and_no_later(emulator):
    old_times, old = await one_by_one(emulator, 1001, 10, old_schedule=True)
    times, new = await one_by_one(emulator, 2001, 10, old_schedule=False)
    assert new["calls"]["CreateContainerGroup"] == 10
    assert new["total"] <= 3 * 10, new
    assert new["total"] < old["total"] / 2, (new, old)  # the old: a describe every 0.1 s for ~0.55 s
    no_slower(times, old_times)


async def test_a_burst_of_twenty_reaches_running_in_at_most_three_calls_a_pod_and_no_later(emulator):
    old_times, old = await burst(emulator, 3001, 20, old_schedule=True)
    times, new = await burst(emulator, 4001, 20, old_schedule=False)
    assert new["calls"]["CreateContainerGroup"] == 20
    assert new["total"] <= 3 * 20, new
    assert new["total"] <= old["total"], (new, old)
    no_slower(times, old_times)
