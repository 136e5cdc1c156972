"""Keeps warm standby control planes ready, as many as recent demand asks for, so that
clusters are Ready in seconds even when they come in a row.

- Size: SK8S_STANDBY_PLANES (the floor, default 1) plus the clusters created in the last
  `WINDOW` seconds, at most SK8S_STANDBY_MAX and at most what a quarter of the memory
  available now holds (a warm plane idles at `PLANE_MEMORY`). Ten creations in a row make
  the pool grow towards ten; once they are `WINDOW` old it shrinks back to the floor, the
  planes beyond it destroyed (claimed first, so no cluster can take one being destroyed).
- Refill: up to `PARALLEL` planes start at once (a kube-apiserver start is mostly waiting
  on its own bootstrap, so two overlap well on two cores), each after `REFILL_DELAY`
  behind a claim, which is followed by the claimant's own start-up.
- A claim finding no warm plane but one warming waits for it (claims.py), which
  is never slower than starting one of its own.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from ..aio import wait_event
from ..config import standby_max, standby_planes
from . import cluster, planes
from .runners import runner

log = logging.getLogger(__name__)
# A claim is followed by the claimant's own start-up (its virtual node): starting a new
# kube-apiserver (seconds of CPU) at that very moment would slow the cluster being created.
REFILL_DELAY = 2.0
WINDOW = 120.0
PARALLEL = 2
PLANE_MEMORY = 400 * 2**20  # bytes an idle warm plane holds (bench/cluster_start.py: ~394 MiB)
RETIRED = "(retired by the standby pool)"  # the claim that keeps a plane being destroyed from clusters


class Demand:
    """Clusters created recently (claims of a plane), as the pool sizes itself by them."""

    def __init__(self, window: float = WINDOW, clock=time.monotonic):
        self.window, self.clock = window, clock
        self._claims: deque[float] = deque()

    def claimed(self) -> None:
        self._claims.append(self.clock())

    def recent(self) -> int:
        horizon = self.clock() - self.window
        while self._claims and self._claims[0] < horizon:
            self._claims.popleft()
        return len(self._claims)


def target_size(floor: int, recent: int, ceiling: int, memory_room: int) -> int:
    """How many standby planes to keep (pure): the floor plus recent demand, within both caps
    (the floor is kept whatever the memory, as before demand was followed)."""
    return max(floor, min(floor + recent, ceiling, memory_room))


def memory_room(available: int | None, per_plane: int = PLANE_MEMORY, share: float = 0.25) -> int:
    """Standby planes a share of the memory available now holds; unknown memory: no room."""
    return int(available * share // per_plane) if available else 0


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


async def clean_stale() -> int:
    """Standby planes of an earlier run are not trusted (their processes may be gone): rebuild.
    So are planes it was retiring when it stopped."""
    restored = await runner().restore()  # planes run as Pods ran on without us: written back
    if restored:
        log.info("restored %d control plane(s) from the meta-cluster", restored)
    # A standby's Pod may run an older version (the image of an upgrade keeps its tag): made again.
    stale = planes.standby(ready_only=False) + [p for p in planes.all_planes() if p.claimed_by == RETIRED]
    for plane in stale:
        await cluster.destroy_plane(plane)
    return len(stale)


async def _add_plane() -> None:
    plane = await cluster.new_plane()
    t = cluster.plane_tenant(plane)
    if await cluster.warm_up(t):
        planes.mark_warm(plane)
        log.info("standby control plane %s is warm", plane.id)
        return
    log.warning("standby control plane %s failed to start; discarding it", plane.id)
    if planes.try_claim(plane, RETIRED):
        await cluster.destroy_plane(plane)
    await asyncio.sleep(10)


async def _retire(count: int) -> None:
    """Destroy `count` warm standby planes beyond what demand asks for."""
    for plane in planes.standby()[:count]:
        if planes.try_claim(plane, RETIRED):
            log.info("standby control plane %s retired: demand has fallen", plane.id)
            await cluster.destroy_plane(plane)


def wanted(demand: Demand) -> int:
    return target_size(standby_planes(), demand.recent(), standby_max(), memory_room(available_memory()))


async def keep_pool(wake: asyncio.Event, demand: Demand | None = None) -> None:
    demand = demand or Demand()
    while True:
        try:
            want, have = wanted(demand), len(planes.standby(ready_only=False))
            if have < want:
                await asyncio.gather(*(_add_plane() for _ in range(min(want - have, PARALLEL))))
                continue
            if have > want:
                await _retire(have - want)
        except Exception:
            log.exception("keeping the standby pool failed")
            await asyncio.sleep(5)
        wake.clear()
        if await wait_event(wake, 5):
            await asyncio.sleep(REFILL_DELAY)
