"""Operator start-up: kopf settings and the provider."""
from __future__ import annotations

import logging

import kopf

from ... import kopfresync, kopfsettings, kube
from ...config import provider_name
from ...models.contracts import FINALIZER_PRIVATEZONE
from ...providers import make_private_zones
from ...providers.errors import ProviderError

log = logging.getLogger(__name__)


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
    try:
        zones = make_private_zones(provider_name())
        await zones.setup()
    except (ProviderError, ValueError) as exc:
        # Not a crash loop: the operator stays up and says why in each zone's status.
        memo.zones, memo.zones_unavailable = None, f"provider {provider_name()}: {exc}"
        log.error("no private zones can be served: %s", memo.zones_unavailable)
    else:
        memo.zones, memo.zones_unavailable = zones, None
    kopfresync.start(memo, "privatezones", finalizer(),
                     diffbase=kopfresync.DIFFBASE_ANNOTATION + kopfsettings.storage_suffix(), accept=kopfsettings.owns)
