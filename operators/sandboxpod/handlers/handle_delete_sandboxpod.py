"""Delete a SandboxPod's sandbox (kopf removes the finalizer once this returns)."""
from __future__ import annotations

import kopf

from ..sandbox import ref_of


# Set by a virtual node when its tenant pod was deleted with an explicit grace period.
GRACE_ANNOTATION = "sk8s.io/deletion-grace-period-seconds"


def grace_period(body) -> int:
    override = (body["metadata"].get("annotations") or {}).get(GRACE_ANNOTATION)
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
