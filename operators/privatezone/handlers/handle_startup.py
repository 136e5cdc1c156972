"""Operator start-up: kopf settings and the provider."""
from __future__ import annotations

import kopf

from ... import kopfresync, kopfsettings, kube
from ...config import provider_name
from ...models.contracts import FINALIZER_PRIVATEZONE
from ...providers import make_private_zones


def finalizer() -> str:
    return FINALIZER_PRIVATEZONE + kopfsettings.storage_suffix()


def configure(settings: kopf.OperatorSettings) -> None:
    # One operator per provider, each with its own finalizer, progress and diff base.
    kopfsettings.configure(settings, finalizer=finalizer(), max_workers=8,
                           storage_suffix=kopfsettings.storage_suffix())


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    try:
        await kube.wait_until_served("privatezones")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    zones = make_private_zones(provider_name())
    await zones.setup()
    memo.zones = zones
    kopfresync.start(memo, "privatezones", finalizer(),
                     diffbase=kopfresync.DIFFBASE_ANNOTATION + kopfsettings.storage_suffix(), accept=kopfsettings.owns)
