"""The boundary between the operator's event loop and blocking work on the host."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def on_host(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn` runs in a thread. Every such call of this operator goes through here (starting and
    stopping processes, which waits for them; making PKI; removing a plane's files)."""
    return await asyncio.to_thread(fn, *args, **kwargs)
