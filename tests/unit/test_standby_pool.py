"""The standby pool's size follows demand (pure parts of serverlesscluster/pool.py)."""
from __future__ import annotations

from operators.serverlesscluster.pool import PLANE_MEMORY, Demand, memory_room, target_size


def test_the_pool_grows_with_recent_creations_and_shrinks_back():
    now = [0.0]
    demand = Demand(window=120, clock=lambda: now[0])
    assert target_size(1, demand.recent(), 6, 100) == 1
    for _ in range(3):
        demand.claimed()
        now[0] += 1
    assert target_size(1, demand.recent(), 6, 100) == 4
    for _ in range(10):
        demand.claimed()
    assert target_size(1, demand.recent(), 6, 100) == 6  # the ceiling
    now[0] += 121
    assert demand.recent() == 0 and target_size(1, demand.recent(), 6, 100) == 1


def test_memory_bounds_growth_but_never_the_floor():
    assert memory_room(8 * PLANE_MEMORY) == 2  # a quarter of it
    assert target_size(1, 10, 6, memory_room(8 * PLANE_MEMORY)) == 2
    assert target_size(2, 10, 6, memory_room(None)) == 2
    assert target_size(0, 0, 6, 100) == 0
