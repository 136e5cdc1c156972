"""Create or update a zone, its records and VPC bindings; report the resolvers."""
from __future__ import annotations

import kopf

from ... import tenancy
from ...conditions import condition
from ...models.contracts import CLUSTER_DOMAIN, CONDITION_READY
from ...providers.errors import ProviderError


def failed(exc: Exception, reason: str, generation, previous) -> dict:
    return {"phase": "Failed", "message": str(exc), "observedGeneration": generation, "resolvers": None,
            "conditions": [condition(CONDITION_READY, False, reason, str(exc), generation=generation,
                                     previous=previous)]}


async def ensure_zone(body, spec, status, meta, patch, memo: kopf.Memo, **_) -> None:
    generation = meta.get("generation")
    previous = (status or {}).get("conditions")
    records = [dict(r) for r in spec.get("records") or []]
    if memo.zones is None:  # the provider could not be made (handle_startup): say so, ask later
        why = ProviderError(memo.zones_unavailable)
        patch.status.update(failed(why, "ProviderUnavailable", generation, previous))
        kopf.warn(body, reason="SyncZoneFailed", message=str(why))
        raise kopf.TemporaryError(str(why), delay=60)
    try:
        await tenancy.check("PrivateZone", dict(body))
    except tenancy.TenancyError as exc:
        # Bound to another tenant's VPC (its records would override that tenant's names) or
        # to no cluster's (a network nobody removes): nothing is created, and a binding an
        # earlier spec had stops answering.
        await memo.zones.delete(meta["uid"])
        patch.status.update(failed(exc, exc.reason, generation, previous))
        kopf.warn(body, reason="SyncZoneFailed", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc
    try:
        resolvers = await memo.zones.ensure(meta["uid"], spec.get("zoneName") or CLUSTER_DOMAIN,
                                            list(spec.get("vpcIDs") or []), records)
    except ProviderError as exc:
        patch.status.update(failed(exc, exc.reason or "ProviderError", generation, previous))
        kopf.warn(body, reason="SyncZoneFailed", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=10) from exc
    patch.status.update({
        "phase": "Ready", "message": None, "resolvers": resolvers, "recordCount": len(records),
        "providerID": f"{memo.zones.name}://{meta['uid']}", "observedGeneration": generation,
        "conditions": [condition(CONDITION_READY, True, "Serving", f"{len(records)} record set(s) in "
                                 f"{len(resolvers)} VPC(s)", generation=generation, previous=previous)],
    })
