"""Operator start-up: kopf settings, the provider, and the addresses already handed out."""
from __future__ import annotations

import logging

import kopf

from ... import kopfresync, kopfsettings, kube
from ...config import provider_name
from ...kube import list_objects
from ...models.contracts import FINALIZER_SERVICELB
from ...providers import make_load_balancers
from .. import follow

log = logging.getLogger(__name__)


def finalizer() -> str:
    return FINALIZER_SERVICELB + kopfsettings.storage_suffix()


def configure(settings: kopf.OperatorSettings) -> None:
    # One operator per provider, each with its own finalizer, progress and diff base.
    kopfsettings.configure(settings, finalizer=finalizer(), max_workers=8,
                           storage_suffix=kopfsettings.storage_suffix())


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    try:
        await kube.wait_until_served("servicelbs")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    lbs = make_load_balancers(provider_name())
    # Every address recorded in a status stays its LB's, whatever order the handlers
    # resume in; an address nobody recorded (a run killed mid-way) is freed. Those of other
    # providers' LBs too: the emulated cloud serves its LBs on this host's data plane.
    items = await list_objects("servicelbs")
    known = {o["metadata"]["uid"]: (o.get("status") or {}).get("address") for o in items}
    await lbs.setup({uid: addr for uid, addr in known.items() if addr})
    memo.lbs = lbs
    memo.follow = follow.start(lbs)  # backends ahead of the update handler (follow.py)
    kopfresync.start(memo, "servicelbs", finalizer(),
                     diffbase=kopfresync.DIFFBASE_ANNOTATION + kopfsettings.storage_suffix(), accept=kopfsettings.owns)
    log.info("ServiceLB operator: %d load balancer(s) known, provider %s", len(known), lbs.name)
