"""Delete a SandboxPod's sandbox (kopf removes the finalizer once this returns)."""
from __future__ import annotations

import kopf

from ..sandbox import ref_of


async def delete_sandbox(body, memo: kopf.Memo, **_) -> None:
    grace = body.get("spec", {}).get("terminationGracePeriodSeconds")
    grace = 30 if grace is None else int(grace)
    kopf.info(body, reason="Killing", message=f"stopping sandbox with a grace period of {grace}s")
    await memo.provider.delete(ref_of(body), grace)
