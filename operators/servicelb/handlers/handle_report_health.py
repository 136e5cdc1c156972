"""Backend health into status, when it changes (the provider checks continuously)."""
from __future__ import annotations

import kopf

from ..status import build_status, health_view

INTERVAL = 2.0


async def report_health(body, status, meta, patch, memo: kopf.Memo, **_) -> None:
    state = memo.lbs.state(meta["uid"])
    if state is None or not (status or {}).get("address"):
        return  # not provisioned (yet): the ensure handler owns the status then
    fresh = build_status(state, provider=memo.lbs.name, generation=(status or {}).get("observedGeneration"),
                         previous=(status or {}).get("conditions"))
    if health_view(fresh) != health_view(dict(status or {})):
        patch.status.update({k: fresh[k] for k in ("listeners", "backends", "conditions")})
        unhealthy = [b["ip"] for b in fresh["backends"] if not b["healthy"]]
        if unhealthy:
            kopf.warn(body, reason="UnhealthyBackends", message=f"failing health checks: {', '.join(unhealthy)}")
