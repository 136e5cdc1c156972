"""Operator start-up: kopf settings and the provider."""
from __future__ import annotations

import logging
import os

import kopf

from ...providers import make_private_zones
from ...servicelb.handlers.handle_startup import configure as configure_lb

FINALIZER = "sk8s.io/privatezone"


def configure(settings: kopf.OperatorSettings) -> None:
    configure_lb(settings)  # the same watch timeouts and storages
    settings.persistence.finalizer = FINALIZER


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    zones = make_private_zones(os.environ.get("SK8S_PROVIDER", "local"))
    await zones.setup()
    memo.zones = zones
