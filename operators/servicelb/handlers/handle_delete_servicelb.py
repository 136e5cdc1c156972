"""Free a ServiceLB's load balancer and address (kopf removes the finalizer afterwards)."""
from __future__ import annotations

import kopf


async def delete_lb(body, meta, memo: kopf.Memo, **_) -> None:
    # The recorded address and VPC: this run may never have served the LB (deleted while
    # the operator was down), and its intranet address must still leave the VPC.
    address = (body.get("status") or {}).get("address")
    await memo.lbs.delete(meta["uid"], address, (body.get("spec") or {}).get("vpcID"))
    kopf.info(body, reason="DeletedLoadBalancer", message=f"released {address}")
