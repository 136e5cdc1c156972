"""Providers run sandboxes. `local` (podman + runc) is the embedded default."""
from __future__ import annotations

import os

from ..config import home_id, layout, write_containers_conf
from .base import Provider


def available_providers() -> list[str]:
    return ["local"]


def make_provider(name: str = "local") -> Provider:
    if name == "local":
        from .local import LocalProvider
        lay = layout()
        return LocalProvider(home_id=home_id(lay.home), containers_conf=str(write_containers_conf(lay)),
                             subnet=os.environ.get("SK8S_POD_SUBNET") or None)
    raise ValueError(f"unknown provider {name!r}")
