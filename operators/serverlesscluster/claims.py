"""A new cluster's control plane: found again after a restart, else a warm standby one
(pool.py), else one the pool is warming, else a new one. A claim is an O_EXCL file
(planes.try_claim): two claims can never win the same plane."""
from __future__ import annotations

import asyncio
import time

from . import cluster, planes

# How long a claim waits for a plane being warmed before starting one of its own (a cold
# start takes about as long: a warming plane is ready sooner, or it failed).
WARMING_WAIT = 15.0


async def claim_plane(uid: str) -> planes.Plane:
    """The plane this cluster owns: found again after a restart, else a warm one, else one
    the pool is warming (it is further along than a new one would be), else a new one."""
    return (await cluster.on_host(_claim_existing, uid) or await _claim_warming(uid)
            or await cluster.new_plane(claim_for=uid))


_waiting_claims = 0  # claims of this process waiting for a warming plane


async def _claim_warming(uid: str, timeout: float = WARMING_WAIT) -> planes.Plane | None:
    """Wait for a plane the pool is warming, if there is one no other claim waits for."""
    global _waiting_claims
    if await cluster.on_host(_warming) <= _waiting_claims:
        return None
    _waiting_claims += 1
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            plane = await cluster.on_host(_claim_existing, uid)
            if plane or await cluster.on_host(_warming) == 0:
                return plane
        return None
    finally:
        _waiting_claims -= 1


def _warming() -> int:
    return len(planes.standby(ready_only=False)) - len(planes.standby())


def _claim_existing(uid: str) -> planes.Plane | None:
    plane = planes.find_claimed(uid)
    if plane:
        return plane
    for candidate in planes.standby():
        if planes.try_claim(candidate, uid):
            return candidate
    return None
