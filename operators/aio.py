"""asyncio helpers for loops that wait on an Event with a timeout.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives in the same turn
as the awaited event is set (it returns the result instead): a loop of
`wait_for(event.wait(), t)` then goes round once more and never ends, and whoever
cancelled it (an operator stopping, a test tearing down) waits for ever. `asyncio.timeout`
counts cancellations and never loses one."""
from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
