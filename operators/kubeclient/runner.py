"""Workers over a WorkQueue, as client-go's controller workers (processNextWorkItem).

A controller gives its `reconcile(key)`; N workers take keys from the queue, at most one
worker per key at a time, and a failed pass comes back with exponential back-off. The
controller's informer handlers only add keys, so every controller converges the same way
after a restart, a missed event or a relist.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Hashable

from .client import ApiError
from .workqueue import WorkQueue

log = logging.getLogger(__name__)
SOON = 0.2  # re-add delay for the `soon` exceptions: the watch brings fresh objects in a moment


class Runner:
    """Runs `reconcile` for the queue's keys on `workers` concurrent workers.

    `forget_on_success`: a pass that returns ends the key's back-off. A controller whose
    reconcile schedules its own retries (queue.retry inside reconcile, e.g. while a
    referenced Secret is missing) sets it False and calls queue.forget itself, or its
    back-off would never grow.
    `soon`: exceptions that mean "the cache was stale" (a 409 on a write carrying the
    cached resourceVersion): retried after SOON, without back-off or a warning.
    `describe`: how a key is named in log lines.
    """

    def __init__(self, name: str, reconcile: Callable[[Hashable], Awaitable[None]], *, workers: int,
                 queue: WorkQueue | None = None, forget_on_success: bool = True,
                 soon: tuple[type[BaseException], ...] = (), describe: Callable[[Hashable], str] = str):
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue = queue if queue is not None else WorkQueue()
        self.forget_on_success = forget_on_success
        self.soon = soon
        self.describe = describe

    async def run(self) -> None:
        """The workers, until cancelled (a worker never ends on its own)."""
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: Hashable) -> None:
        """One pass over `key`; what a failure means for the key's next pass is decided here."""
        try:
            await self.reconcile(key)
            if self.forget_on_success:
                self.queue.forget(key)
        except asyncio.CancelledError:
            raise
        except self.soon:
            self.queue.add_after(key, SOON)
        except ApiError as exc:
            delay = self.queue.retry(key)
            log.warning("%s %s: %s; retrying in %.1fs", self.name, self.describe(key), exc, delay)
        except Exception:
            delay = self.queue.retry(key)
            log.exception("%s %s: reconcile failed; retrying in %.1fs", self.name, self.describe(key), delay)
