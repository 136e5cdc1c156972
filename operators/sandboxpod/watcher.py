"""Pushes provider state changes into SandboxPod status, without polling.

One queue per operator (not a task per object): memory and API load stay flat as the
number of sandboxes grows. The provider's events only add keys to a work queue (as a
client-go controller's informer handlers do); a few workers refresh them, at most one
worker per sandbox at a time, so one slow refresh delays no other sandbox. Bursts of
events for one sandbox collapse into one refresh. A refresh that fails (the meta
apiserver restarting, say) comes back with back-off until it goes through: the event
that caused it will not come again, and a sandbox that started while the apiserver was
down would otherwise be reported as starting for ever. Handlers `notify` too after
writing status themselves, so that an event which raced their write is never lost. A
provider's watch that fails is started again, and every sandbox refreshed once: a watch
ended by one bad poll would otherwise leave every status where it was, for ever.
"""
from __future__ import annotations

import asyncio
import logging

from ..kubeclient.runner import Runner
from ..kubeclient.workqueue import WorkQueue
from ..providers.lifecycle import SandboxLifecycle
from ..providers.sandbox import SandboxRef
from .sandbox import refresh

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 0.05
WATCH_RETRY_SECONDS = 1.0


class StatusPusher:
    def __init__(self, provider: SandboxLifecycle, workers: int = 8,
                 queue: WorkQueue | None = None):
        self.provider = provider
        self.queue = queue if queue is not None else WorkQueue(base_delay=0.5, max_delay=10.0)
        self.runner = Runner("status", self._refresh, workers=workers, queue=self.queue,
                             describe=lambda ref: f"{ref.namespace}/{ref.name}")

    def notify(self, ref: SandboxRef) -> None:
        self.queue.add_after(ref, DEBOUNCE_SECONDS)

    async def _refresh(self, ref: SandboxRef) -> None:
        await refresh(self.provider, ref)

    async def run(self) -> None:
        workers = asyncio.create_task(self.runner.run())
        try:
            while True:
                try:
                    async for ref in self.provider.watch():
                        self.notify(ref)
                    return
                except Exception:  # noqa: BLE001 - without a watch no status would ever move again
                    log.exception("the provider's watch failed; watching again in %.0f s", WATCH_RETRY_SECONDS)
                await asyncio.sleep(WATCH_RETRY_SECONDS)
                await self._refresh_all()
        finally:
            workers.cancel()

    async def _refresh_all(self) -> None:
        """After a failed watch: an event it swallowed will not come again, so every
        sandbox is refreshed once."""
        try:
            refs = await self.provider.list()
        except Exception as exc:  # noqa: BLE001 - the next failure or event tries again
            log.warning("listing sandboxes after a failed watch: %s", exc)
            return
        for ref in refs:
            self.notify(ref)
