"""Remove a zone and its records (kopf removes the finalizer afterwards)."""
from __future__ import annotations

import kopf


async def delete_zone(meta, memo: kopf.Memo, **_) -> None:
    if memo.zones is None:  # a provider that never came up made nothing to remove
        raise kopf.TemporaryError(f"cannot remove the zone: {memo.zones_unavailable}", delay=60)
    await memo.zones.delete(meta["uid"])
