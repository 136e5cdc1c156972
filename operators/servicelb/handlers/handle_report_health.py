"""Backend health into status, when it changes (the provider checks continuously).

A daemon per ServiceLB rather than a timer: it wakes every INTERVAL and writes only when
something changed, without a handler run (and a log line) per tick.
"""
from __future__ import annotations

import kopf

from ... import kube
from ..status import build_status, health_view

INTERVAL = 2.0


async def report_health(body, meta, memo: kopf.Memo, stopped, **_) -> None:
    uid, ns, name = meta["uid"], meta["namespace"], meta["name"]
    reported = health_view(dict(body.get("status") or {}))
    while not stopped:
        await stopped.wait(INTERVAL)
        state = memo.lbs.state(uid)
        status = dict(body.get("status") or {})  # kopf keeps `body` current
        if state is None or not status.get("address"):
            continue  # not provisioned (yet): the ensure handler owns the status then
        fresh = build_status(state, provider=memo.lbs.name, generation=status.get("observedGeneration"),
                             previous=status.get("conditions"))
        if health_view(fresh) in (reported, health_view(status)):
            continue
        await kube.patch_status("servicelbs", ns, name, {k: fresh[k] for k in ("listeners", "backends", "conditions")})
        reported = health_view(fresh)
        unhealthy = [b["ip"] for b in fresh["backends"] if not b["healthy"]]
        if unhealthy:
            kopf.warn(body, reason="UnhealthyBackends", message=f"failing health checks: {', '.join(unhealthy)}")
