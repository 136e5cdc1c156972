"""Create (or, after an operator restart, resume) the sandbox of a SandboxPod."""
from __future__ import annotations

import kopf

from ... import tenancy
from ...models.contracts import REASON_ERR_IMAGE_PULL, REASON_IMAGE_PULL_BACKOFF, REASON_PROVIDER_UNAVAILABLE
from ...models.sandboxpod import SandboxPodSpec
from ...providers.errors import ImagePullError, ProviderError
from ...tenancy import Tenant, TenancyError
from ..sandbox import labels_of, ref_of, spec_of, status_for
from ..volumecontent import ContentMissing, load
from .handle_ephemeral_containers import add_ephemeral_containers

CONTENT_WAIT = 0.5  # the virtual node writes a pod's volume content before its SandboxPod

# kubelet's image pull back-off: 10 s doubling to 5 min.
PULL_BACKOFF = [10, 20, 40, 80, 160, 300]


async def ensure_sandbox(body, patch: kopf.Patch, memo: kopf.Memo, retry: int, reason: str, **_) -> None:
    provider = memo.provider
    ref = ref_of(body)
    spec = spec_of(body)
    try:
        labels = labels_of(body, await admitted(body, spec, provider, ref, reason))
        inst = None
        if reason == "resume" or retry > 0:
            # Most sandboxes exist already after an operator restart: look before creating.
            inst = await provider.inspect(ref)
            if inst is not None and len(inst.containers) < len(spec.containers) and not spec.initContainers:
                inst = None
            if inst is not None:
                await provider.resume(ref, spec, labels)
        if spec.volumes:
            await prepare_volumes(provider, body, spec, labels)
        instance_id = inst.instance_id if inst else await provider.ensure(ref, spec, labels)
    except ImagePullError as err:
        if retry > 0 and err.reason == REASON_ERR_IMAGE_PULL:
            err.reason = REASON_IMAGE_PULL_BACKOFF
        patch.status.update(status_for(body, None, provider, err))
        kopf.warn(body, reason="Failed", message=str(err))
        memo.events(ref, "Warning", "Failed", f"Error: {err}")  # the kubelet's, mirrored to the pod
        raise kopf.TemporaryError(str(err), delay=PULL_BACKOFF[min(retry, len(PULL_BACKOFF) - 1)])
    except ProviderError as err:
        patch.status.update(status_for(body, None, provider, err))
        kopf.warn(body, reason=err.reason, message=str(err))
        memo.events(ref, "Warning", "Failed", f"Error: {err}")
        if not err.retryable:
            raise kopf.PermanentError(str(err))
        raise kopf.TemporaryError(str(err), delay=min(5 * (retry + 1), 60))
    # The status pusher writes the state from the provider's events; this refresh covers
    # a sandbox found rather than created (a resume sends no event) and any event that
    # was seen before the sandbox was complete.
    memo.pusher.notify(ref)
    if body.get("ephemeralContainers"):
        # Added while this handler ran (or before an operator restart): kopf counts that
        # change as part of this cause, so the update handler would never see it.
        await add_ephemeral_containers(body=body, memo=memo, retry=retry)
    if reason == "create" and retry == 0 or (body.get("status") or {}).get("reason"):
        kopf.info(body, reason="Started", message=f"sandbox {instance_id} started on provider {provider.name}")


async def admitted(body, spec: SandboxPodSpec, provider, ref, reason: str) -> Tenant | None:
    """The tenant whose sandbox this is, or a final refusal naming the field that says otherwise."""
    try:
        tenant = await tenancy.check("SandboxPod", body)
    except TenancyError as exc:
        if reason == "resume":  # run by an earlier version that did not check: it goes
            await provider.delete(ref, 0)
        raise ProviderError(str(exc), reason=exc.reason, retryable=False) from exc
    if spec.provider and spec.provider != provider.name:
        raise ProviderError(f"spec.provider: {spec.provider!r} is not run here (this operator's provider is "
                            f"{provider.name!r})", reason=REASON_PROVIDER_UNAVAILABLE, retryable=False)
    return tenant


async def prepare_volumes(provider, body, spec: SandboxPodSpec, labels: dict[str, str]) -> None:
    meta = body["metadata"]
    try:
        content = await load(meta["namespace"], meta["name"], spec)
    except ContentMissing as exc:
        raise kopf.TemporaryError(str(exc), delay=CONTENT_WAIT)
    await provider.prepare_volumes(ref_of(body), spec, labels, content)
