"""Pushes provider state changes into SandboxPod status, without polling.

One task per operator (not per object): memory and API load stay flat as the
number of sandboxes grows. Bursts of events for one sandbox collapse into one refresh.
"""
from __future__ import annotations

import asyncio
import logging

from ..providers.base import Provider, SandboxRef
from .sandbox import refresh

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 0.05


async def watch_provider(provider: Provider, concurrency: int = 8) -> None:
    pending: set[SandboxRef] = set()
    wake = asyncio.Event()
    limit = asyncio.Semaphore(concurrency)

    async def one(ref: SandboxRef) -> None:
        async with limit:
            try:
                await refresh(provider, ref)
            except Exception:  # the next event or the resume handler will try again
                log.exception("refreshing %s/%s failed", ref.namespace, ref.name)

    async def drain() -> None:
        while True:
            await wake.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            wake.clear()
            batch = list(pending)
            pending.clear()
            await asyncio.gather(*(one(r) for r in batch))

    drainer = asyncio.create_task(drain())
    try:
        async for ref in provider.watch():
            pending.add(ref)
            wake.set()
    finally:
        drainer.cancel()
