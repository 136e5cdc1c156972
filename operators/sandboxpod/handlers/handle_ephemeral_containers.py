"""Ephemeral containers (`kubectl debug`) added to a SandboxPod: each is run once in its
running sandbox by the provider, which reports it in status.ephemeralContainerStatuses."""
from __future__ import annotations

import kopf

from ... import tenancy
from ...models.sandboxpod import EphemeralContainer
from ...providers.errors import ProviderError
from ..sandbox import labels_of, ref_of, spec_of

SANDBOX_WAIT = 2  # seconds: the sandbox is still being created


async def add_ephemeral_containers(body, memo: kopf.Memo, retry: int, **_) -> None:
    """On every update of the SandboxPod (its diff base is a digest, so no field diff: the
    spec is immutable, and adding is idempotent, so each listed container is ensured)."""
    new = body.get("ephemeralContainers") or []
    if not new or body["metadata"].get("deletionTimestamp"):
        return
    ref = ref_of(body)
    provider = memo.provider
    if await provider.inspect(ref) is None:
        raise kopf.TemporaryError("the sandbox is not running yet", delay=SANDBOX_WAIT)
    spec = spec_of(body)
    # The tenant's namespace decides the labels, as when the sandbox was made (create handler).
    try:
        labels = labels_of(body, await tenancy.check("SandboxPod", body))
    except tenancy.TenancyError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    for raw in new:
        c = EphemeralContainer.model_validate(raw)
        try:
            await provider.add_ephemeral_container(ref, spec, labels, c)
        except ProviderError as err:
            kopf.warn(body, reason=err.reason, message=f"ephemeral container {c.name}: {err}")
            memo.events(ref, "Warning", "Failed", f"Error: {err}",
                        field_path=f"spec.ephemeralContainers{{{c.name}}}")
            if err.retryable:
                raise kopf.TemporaryError(str(err), delay=min(5 * (retry + 1), 60))
    memo.pusher.notify(ref)
