"""Operator start-up: kopf settings and the provider."""
from __future__ import annotations

import kopf

from ... import kopfresync, kopfsettings, kube
from ...config import provider_name
from ...models.contracts import FINALIZER_PRIVATEZONE
from ...providers import make_private_zones


def configure(settings: kopf.OperatorSettings) -> None:
    kopfsettings.configure(settings, finalizer=FINALIZER_PRIVATEZONE, max_workers=8)


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    try:
        await kube.wait_until_served("privatezones")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    zones = make_private_zones(provider_name())
    await zones.setup()
    memo.zones = zones
    kopfresync.start(memo, "privatezones", FINALIZER_PRIVATEZONE)
