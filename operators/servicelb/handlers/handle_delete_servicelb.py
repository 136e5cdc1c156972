"""Free a ServiceLB's load balancer and address (kopf removes the finalizer afterwards)."""
from __future__ import annotations

import kopf


async def delete_lb(body, meta, memo: kopf.Memo, **_) -> None:
    await memo.lbs.delete(meta["uid"])
    kopf.info(body, reason="DeletedLoadBalancer", message=f"released {(body.get('status') or {}).get('address')}")
