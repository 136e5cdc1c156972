"""Remove a zone and its records (kopf removes the finalizer afterwards)."""
from __future__ import annotations

import kopf


async def delete_zone(meta, memo: kopf.Memo, **_) -> None:
    await memo.zones.delete(meta["uid"])
