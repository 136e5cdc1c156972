"""Operator start-up: kopf settings and the pool of warm standby control planes."""
from __future__ import annotations

import asyncio
import logging

import kopf

from ... import kopfresync, kopfsettings, kube
from ...models.contracts import FINALIZER_SERVERLESSCLUSTER
from .. import netgc, pool
from ..power import Power
from .handle_sleep_cluster import on_woken

log = logging.getLogger(__name__)


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    kopfsettings.configure(settings, finalizer=FINALIZER_SERVERLESSCLUSTER, max_workers=16)
    try:
        await kube.wait_until_served("serverlessclusters")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    memo.power = Power(on_woken)
    await memo.power.start()  # before any cluster's handlers: the health timer takes its locks
    removed = await pool.clean_stale()
    if removed:
        log.info("discarded %d standby control plane(s) of an earlier run", removed)
    memo.pool_wake = asyncio.Event()
    memo.pool_demand = pool.Demand()
    memo.pool_task = asyncio.create_task(pool.keep_pool(memo.pool_wake, memo.pool_demand))
    if getattr(memo, "netgc_task", None) is None:
        memo.netgc_task = asyncio.create_task(netgc.collect_periodically())
    kopfresync.start(memo, "serverlessclusters", FINALIZER_SERVERLESSCLUSTER)


async def stop(memo: kopf.Memo, **_) -> None:
    if getattr(memo, "power", None):
        await memo.power.stop()
    for name in ("pool_task", "netgc_task"):
        task = getattr(memo, name, None)
        if task:
            task.cancel()
