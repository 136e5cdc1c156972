"""Delete a SandboxPod's sandbox (kopf removes the finalizer once this returns)."""
from __future__ import annotations

import kopf

from ...models.contracts import ANNOTATION_DELETION_GRACE
from ..sandbox import ref_of


def grace_period(body) -> int:
    override = (body["metadata"].get("annotations") or {}).get(ANNOTATION_DELETION_GRACE)  # set by a virtual node
    if override is not None and override.isdigit():
        return int(override)
    grace = (body.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if grace is None else int(grace)


async def delete_sandbox(body, memo: kopf.Memo, **_) -> None:
    grace = grace_period(body)
    kopf.info(body, reason="Killing", message=f"stopping sandbox with a grace period of {grace}s")
    ref = ref_of(body)
    await memo.provider.delete(ref, grace)
    memo.events.forget(ref)
