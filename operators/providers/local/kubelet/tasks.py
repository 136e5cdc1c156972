"""Stopping a sandbox's background tasks (its lifecycle loop, probe loops, storage watch)."""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable

log = logging.getLogger(__name__)
ROUND_SECONDS = 1.0
ROUNDS = 30


async def cancel_all(tasks: Iterable[asyncio.Task], owner: str, *, round_seconds: float = ROUND_SECONDS,
                     rounds: int = ROUNDS) -> None:
    """Cancel the tasks and wait for them to end. A cancellation can be lost (Python 3.11's
    wait_for drops one that arrives together with its result, gh-86296, and the task goes
    on): a task still running after a round is cancelled again. A deletion never waits
    forever on its tasks: after the last round the rest is logged and left behind."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(rounds):
        if not pending:
            return
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=round_seconds)
    if pending:
        log.error("%s: %d task(s) did not stop: %s", owner, len(pending), sorted(t.get_name() for t in pending))
