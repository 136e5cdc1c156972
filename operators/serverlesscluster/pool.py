"""Keeps a few warm standby control planes ready, so that clusters are Ready in seconds."""
from __future__ import annotations

import asyncio
import logging

from ..config import standby_planes
from . import cluster, planes

log = logging.getLogger(__name__)
# A claim is followed by the claimant's own start-up (its virtual node): starting a new
# kube-apiserver (seconds of CPU) at that very moment would slow the cluster being created.
REFILL_DELAY = 2.0


def target_size() -> int:
    return standby_planes()


async def clean_stale() -> int:
    """Standby planes of an earlier run are not trusted (their processes may be gone): rebuild."""
    stale = planes.standby(ready_only=False)
    for plane in stale:
        await cluster.destroy_plane(plane)
    return len(stale)


async def keep_pool(wake: asyncio.Event) -> None:
    while True:
        try:
            if len(planes.standby(ready_only=False)) < target_size():
                plane = await cluster.new_plane()
                t = cluster.plane_tenant(plane)
                if await cluster.warm_up(t):
                    planes.mark_warm(plane)
                    log.info("standby control plane %s is warm", plane.id)
                else:
                    log.warning("standby control plane %s failed to start; discarding it", plane.id)
                    await cluster.destroy_plane(plane)
                    await asyncio.sleep(10)
                continue
        except Exception:
            log.exception("keeping the standby pool failed")
            await asyncio.sleep(5)
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), timeout=5)
            await asyncio.sleep(REFILL_DELAY)
        except asyncio.TimeoutError:
            pass
