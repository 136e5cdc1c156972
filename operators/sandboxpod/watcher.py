"""Pushes provider state changes into SandboxPod status, without polling.

One task per operator (not per object): memory and API load stay flat as the
number of sandboxes grows. Bursts of events for one sandbox collapse into one refresh.
Handlers `notify` too after writing status themselves, so that an event which raced
their write is never lost.
"""
from __future__ import annotations

import asyncio
import logging

from ..providers.lifecycle import SandboxLifecycle
from ..providers.sandbox import SandboxRef
from .sandbox import refresh

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 0.05


class StatusPusher:
    def __init__(self, provider: SandboxLifecycle, concurrency: int = 8):
        self.provider = provider
        self.pending: set[SandboxRef] = set()
        self.wake = asyncio.Event()
        self.limit = asyncio.Semaphore(concurrency)

    def notify(self, ref: SandboxRef) -> None:
        self.pending.add(ref)
        self.wake.set()

    async def _one(self, ref: SandboxRef) -> None:
        async with self.limit:
            try:
                await refresh(self.provider, ref)
            except Exception:  # the next event or the resume handler will try again
                log.exception("refreshing %s/%s failed", ref.namespace, ref.name)

    async def _drain(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self.wake.clear()
            batch = list(self.pending)
            self.pending.clear()
            await asyncio.gather(*(self._one(r) for r in batch))

    async def run(self) -> None:
        drainer = asyncio.create_task(self._drain())
        try:
            async for ref in self.provider.watch():
                self.notify(ref)
        finally:
            drainer.cancel()
