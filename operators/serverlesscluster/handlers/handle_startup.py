"""Operator start-up: kopf settings and the pool of warm standby control planes."""
from __future__ import annotations

import asyncio
import logging

import kopf

from .. import pool

log = logging.getLogger(__name__)


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.persistence.finalizer = "sk8s.io/serverlesscluster"
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="sk8s.io", key="last-handled-configuration")
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 16
    removed = await asyncio.to_thread(pool.clean_stale)
    if removed:
        log.info("discarded %d standby control plane(s) of an earlier run", removed)
    memo.pool_wake = asyncio.Event()
    memo.pool_task = asyncio.create_task(pool.keep_pool(memo.pool_wake))


async def stop(memo: kopf.Memo, **_) -> None:
    task = getattr(memo, "pool_task", None)
    if task:
        task.cancel()
