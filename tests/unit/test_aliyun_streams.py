"""Container logs through ECI's DescribeContainerLog, against the emulator and the real SDK."""
from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.streams import AliyunStreams, new_lines
from operators.providers.errors import ProviderError
from operators.providers.logopts import ContainerLogOpts

from .emulatorkit import AK, REGION, SK, EmulatorThread
from .test_aliyun_provider import LABELS, SPEC, provider_for, ref, until_state


def test_follow_passes_on_each_line_once():
    first = "T1 a\nT2 b\nT2 c\n"
    lines, last, same = new_lines(first, None, 0)
    assert lines == ["T1 a", "T2 b", "T2 c"] and (last, same) == ("T2", 2)
    again = "T2 b\nT2 c\nT2 d\nT3 e\n"  # an overlapping window: two lines of T2 seen, one new
    lines, last, same = new_lines(again, last, same)
    assert lines == ["T2 d", "T3 e"] and (last, same) == ("T3", 1)
    assert new_lines("T1 a\nT3 e\n", last, same)[0] == []


@pytest.fixture
def emulator():
    emu = EmulatorThread(schedule_delay=0.05, start_delay=0.05, tick=0.02)
    yield emu
    emu.stop()


def lines_of(emu: EmulatorThread, n: int) -> None:
    """The in-memory backend's containers log what the test gives them (after their own
    "app: started busybox")."""
    for run in emu.backend.runs.values():
        run.logs["app"] += [(time.time(), f"line {i}") for i in range(n)]


async def collect(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_logs_with_options(emulator):
    provider = provider_for(emulator)
    await provider.ensure(ref(1), SPEC, LABELS)
    await until_state(provider, ref(1), "running")
    await asyncio.to_thread(lines_of, emulator, 5)
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emulator.port}")
    streams = AliyunStreams(client, "home-1")
    assert await collect(streams.logs(ref(1), "app", ContainerLogOpts())) == b"app: started busybox\n" + b"".join(
        f"line {i}\n".encode() for i in range(5))
    assert await collect(streams.logs(ref(1), "app", ContainerLogOpts(tail=2))) == b"line 3\nline 4\n"
    assert await collect(streams.logs(ref(1), "app", ContainerLogOpts(limit_bytes=8))) == b"app: sta"
    stamped = await collect(streams.logs(ref(1), "app", ContainerLogOpts(tail=1, timestamps=True)))
    stamp, text = stamped.decode().rstrip("\n").split(" ", 1)
    assert text == "line 4" and dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")[:26] + "+00:00")
    with pytest.raises(ProviderError, match="previous"):
        await collect(streams.logs(ref(1), "app", ContainerLogOpts(previous=True)))
    with pytest.raises(ProviderError, match="no container group"):
        await collect(streams.logs(ref(9), "app", ContainerLogOpts()))


async def test_follow_yields_new_lines_once_each(emulator, monkeypatch):
    monkeypatch.setattr("operators.providers.aliyun.streams.FOLLOW_INTERVAL", 0.1)
    provider = provider_for(emulator)
    await provider.ensure(ref(2), SPEC, LABELS)
    await until_state(provider, ref(2), "running")
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emulator.port}")
    stream = AliyunStreams(client, "home-1").logs(ref(2), "app", ContainerLogOpts(follow=True))
    got = [await anext(stream)]
    await asyncio.to_thread(lines_of, emulator, 3)
    while b"".join(got).count(b"\n") < 4:
        got.append(await asyncio.wait_for(anext(stream), 5))
    await asyncio.sleep(0.5)  # rounds that see the same lines again pass nothing on
    await asyncio.to_thread(lines_of, emulator, 1)
    got.append(await asyncio.wait_for(anext(stream), 5))
    await stream.aclose()
    assert b"".join(got) == b"app: started busybox\nline 0\nline 1\nline 2\nline 0\n"
