"""A container's image changed in place (the tenant updated the pod's image; the virtual
node wrote `containerImages`): the provider restarts that container with its new image,
as a kubelet does, and the restart counts in its restartCount."""
from __future__ import annotations

import kopf

from ... import tenancy
from ...providers.errors import ProviderError
from ..sandbox import labels_of, ref_of, spec_of

SANDBOX_WAIT = 2  # seconds: the sandbox is still being created


async def change_images(body, memo: kopf.Memo, retry: int, **_) -> None:
    """On every update (no field diff: the diff base is a digest); idempotent, since the
    provider compares with what runs."""
    if body.get("containerImages") is None or body["metadata"].get("deletionTimestamp"):
        return  # [] stays: an image changed back to the one the spec names
    ref = ref_of(body)
    provider = memo.provider
    if await provider.inspect(ref) is None:
        raise kopf.TemporaryError("the sandbox is not running yet", delay=SANDBOX_WAIT)
    try:
        labels = labels_of(body, await tenancy.check("SandboxPod", body))
    except tenancy.TenancyError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    try:
        await provider.change_images(ref, spec_of(body), labels)
    except ProviderError as err:
        kopf.warn(body, reason=err.reason, message=f"changing an image: {err}")
        memo.events(ref, "Warning", "Failed", f"Error: {err}")
        if err.retryable:
            raise kopf.TemporaryError(str(err), delay=min(5 * (retry + 1), 60))
        raise kopf.PermanentError(str(err)) from err
    memo.pusher.notify(ref)
