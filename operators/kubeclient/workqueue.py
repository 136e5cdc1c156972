"""A keyed work queue, as client-go's: a key is never processed by two workers at once,
bursts of events for one key collapse into one pass, and failures retry with back-off."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Hashable


class WorkQueue:
    def __init__(self, base_delay: float = 0.5, max_delay: float = 30.0):
        self._queue: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Hashable) -> None:
        timer = self._timers.pop(key, None)
        if timer:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        if key in self._queued or key in self._timers and self._timers[key].when() <= \
                asyncio.get_running_loop().time() + delay:
            return
        old = self._timers.pop(key, None)
        if old:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: Hashable, *, max_delay: float | None = None) -> float:
        """Re-add after an exponential back-off; returns the delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.base_delay * (2 ** n), max_delay or self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    async def get(self) -> Hashable:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
