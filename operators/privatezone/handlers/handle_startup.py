"""Operator start-up: kopf settings and the provider."""
from __future__ import annotations

import os

import kopf

from ... import kopfsettings, kube
from ...providers import make_private_zones

FINALIZER = "sk8s.io/privatezone"


def configure(settings: kopf.OperatorSettings) -> None:
    kopfsettings.configure(settings, finalizer=FINALIZER, max_workers=8)


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    try:
        await kube.wait_until_served("privatezones")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    zones = make_private_zones(os.environ.get("SK8S_PROVIDER", "local"))
    await zones.setup()
    memo.zones = zones
