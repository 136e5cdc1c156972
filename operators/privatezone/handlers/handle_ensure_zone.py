"""Create or update a zone, its records and VPC bindings; report the resolvers."""
from __future__ import annotations

import kopf

from ...conditions import condition
from ...providers.base import ProviderError


async def ensure_zone(body, spec, status, meta, patch, memo: kopf.Memo, **_) -> None:
    generation = meta.get("generation")
    previous = (status or {}).get("conditions")
    records = [dict(r) for r in spec.get("records") or []]
    try:
        resolvers = await memo.zones.ensure(meta["uid"], spec.get("zoneName") or "cluster.local",
                                            list(spec.get("vpcIDs") or []), records)
    except ProviderError as exc:
        patch.status.update({"phase": "Failed", "message": str(exc), "observedGeneration": generation,
                             "conditions": [condition("Ready", False, exc.reason or "ProviderError", str(exc),
                                                      generation=generation, previous=previous)]})
        kopf.warn(body, reason="SyncZoneFailed", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=10) from exc
    patch.status.update({
        "phase": "Ready", "message": None, "resolvers": resolvers, "recordCount": len(records),
        "providerID": f"{memo.zones.name}://{meta['uid']}", "observedGeneration": generation,
        "conditions": [condition("Ready", True, "Serving", f"{len(records)} record set(s) in "
                                 f"{len(resolvers)} VPC(s)", generation=generation, previous=previous)],
    })
