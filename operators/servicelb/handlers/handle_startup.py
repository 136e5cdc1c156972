"""Operator start-up: kopf settings, the provider, and the addresses already handed out."""
from __future__ import annotations

import logging
import os

import kopf

from ...kube import list_objects
from ...providers import make_load_balancers

log = logging.getLogger(__name__)
FINALIZER = "sk8s.io/servicelb"


def configure(settings: kopf.OperatorSettings) -> None:
    # Explicit watch timeouts: a silently dead watch connection must not stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="sk8s.io", key="last-handled-configuration")
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    lbs = make_load_balancers(os.environ.get("SK8S_PROVIDER", "local"))
    # Every address recorded in a status stays its LB's, whatever order the handlers
    # resume in; an address nobody recorded (a run killed mid-way) is freed.
    items = await list_objects("servicelbs")
    known = {o["metadata"]["uid"]: (o.get("status") or {}).get("address") for o in items}
    await lbs.setup({uid: addr for uid, addr in known.items() if addr})
    memo.lbs = lbs
    log.info("ServiceLB operator: %d load balancer(s) known, provider %s", len(known), lbs.name)
