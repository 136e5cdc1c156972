"""The SandboxPod status pusher: a refresh that fails comes back by itself (the provider's
event will not come again), and one slow refresh holds up no other sandbox."""
from __future__ import annotations

import asyncio

from operators.kubeclient.workqueue import WorkQueue
from operators.providers.sandbox import SandboxRef
from operators.sandboxpod import watcher

A = SandboxRef("ns", "a", "uid-a")
B = SandboxRef("ns", "b", "uid-b")


class OneEventProvider:
    """A provider whose watch reports each sandbox once, then stays silent."""

    name = "fake"

    def __init__(self, *refs: SandboxRef):
        self.refs = refs

    async def watch(self):
        for ref in self.refs:
            yield ref
        await asyncio.Event().wait()


async def _run_until(pusher, done: asyncio.Event, timeout: float = 5.0) -> None:
    task = asyncio.create_task(pusher.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failed_refresh_is_retried_without_another_event(monkeypatch):
    calls: list[SandboxRef] = []
    written = asyncio.Event()

    async def refresh(provider, ref):
        calls.append(ref)
        if len(calls) < 3:  # the meta apiserver is restarting
            raise ConnectionRefusedError("connect to 127.0.0.1:6443 refused")
        written.set()

    monkeypatch.setattr(watcher, "refresh", refresh)
    pusher = watcher.StatusPusher(OneEventProvider(A), queue=WorkQueue(base_delay=0.01, max_delay=0.05))
    await _run_until(pusher, written)
    assert calls == [A, A, A]


async def test_a_slow_refresh_does_not_hold_up_another_sandbox(monkeypatch):
    release = asyncio.Event()
    b_written = asyncio.Event()

    async def refresh(provider, ref):
        if ref == A:
            await release.wait()  # a request hanging until its timeout
        else:
            b_written.set()

    monkeypatch.setattr(watcher, "refresh", refresh)
    pusher = watcher.StatusPusher(OneEventProvider(A, B))
    try:
        await _run_until(pusher, b_written, timeout=2.0)
    finally:
        release.set()


async def test_a_burst_of_events_for_one_sandbox_is_one_refresh(monkeypatch):
    calls: list[SandboxRef] = []

    async def refresh(provider, ref):
        calls.append(ref)

    monkeypatch.setattr(watcher, "refresh", refresh)
    pusher = watcher.StatusPusher(OneEventProvider(A, A, A, A))
    task = asyncio.create_task(pusher.run())
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert calls == [A]


class FailingWatchProvider:
    """A watch that fails once after its first event, then reports B."""

    name = "fake"

    def __init__(self):
        self.watches = 0

    async def list(self):
        return [A, B]

    async def watch(self):
        self.watches += 1
        if self.watches == 1:
            yield A
            raise KeyError("a bug in one poll")
        yield B
        await asyncio.Event().wait()


async def test_a_failed_watch_is_started_again_and_every_sandbox_refreshed(monkeypatch):
    calls: list[SandboxRef] = []
    done = asyncio.Event()

    async def refresh(provider, ref):
        calls.append(ref)
        if ref == B:
            done.set()

    monkeypatch.setattr(watcher, "refresh", refresh)
    monkeypatch.setattr(watcher, "WATCH_RETRY_SECONDS", 0.01)
    provider = FailingWatchProvider()
    pusher = watcher.StatusPusher(provider, queue=WorkQueue(base_delay=0.01, max_delay=0.05))
    await _run_until(pusher, done)
    assert provider.watches == 2
    # A from the first watch, A and B from the refresh of all and B from the new watch
    # (keys queued meanwhile collapse into one refresh each).
    assert set(calls) == {A, B}
