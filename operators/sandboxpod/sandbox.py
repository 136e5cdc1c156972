"""Domain logic shared by the SandboxPod handlers: ensure, refresh, delete, collect garbage."""
from __future__ import annotations

import logging

from ..models.sandboxpod import SandboxPodSpec
from ..providers.lifecycle import SandboxLifecycle
from ..providers.errors import ProviderError
from ..providers.sandbox import SandboxInstance, SandboxRef
from .. import kube
from ..models.contracts import LABEL_CLUSTER, LABEL_CLUSTER_UID
from ..tenancy import Tenant
from .ownership import takes
from .status import build_status

log = logging.getLogger(__name__)
PLURAL = "sandboxpods"


def ref_of(body) -> SandboxRef:
    meta = body["metadata"]
    return SandboxRef(meta["namespace"], meta["name"], meta["uid"])


def labels_of(body, tenant: Tenant | None = None) -> dict[str, str]:
    """Labels the provider sees: the tenant cluster decides the sandbox's network.

    In a tenant namespace they come from the namespace (`tenancy.check` has refused an
    object saying otherwise); an admin's SandboxPod elsewhere says them itself.
    """
    if tenant is not None:
        return {LABEL_CLUSTER: tenant.cluster, LABEL_CLUSTER_UID: tenant.uid}
    spec = body.get("spec") or {}
    labels = {}
    cluster = (spec.get("clusterRef") or {}).get("name")
    if cluster:
        labels[LABEL_CLUSTER] = cluster
    cluster_uid = (body["metadata"].get("labels") or {}).get(LABEL_CLUSTER_UID)
    if cluster_uid:
        labels[LABEL_CLUSTER_UID] = cluster_uid
    return labels


def spec_of(body) -> SandboxPodSpec:
    """The pod as it is to run now: the immutable spec with the images changed since
    (`containerImages`, kept apart so that the rest of the spec cannot change)."""
    spec = SandboxPodSpec.model_validate(body.get("spec") or {})
    images = {i["name"]: i["image"] for i in body.get("containerImages") or []}
    if not images:
        return spec

    def swap(containers):
        return [c.model_copy(update={"image": images[c.name]}) if c.name in images else c for c in containers]
    return spec.model_copy(update={"containers": swap(spec.containers),
                                   "initContainers": swap(spec.initContainers) if spec.initContainers else None})


def status_for(body, inst: SandboxInstance | None, provider: SandboxLifecycle,
               error: ProviderError | None = None) -> dict:
    spec = spec_of(body)
    return build_status(spec, inst, prev=dict(body.get("status") or {}),
                        generation=body["metadata"].get("generation"), provider=provider.name, error=error,
                        ephemeral=list(body.get("ephemeralContainers") or []))


async def refresh(provider: SandboxLifecycle, ref: SandboxRef) -> None:
    """Re-read one sandbox and write the SandboxPod's status; used by the event watcher."""
    body = await kube.get_object(PLURAL, ref.namespace, ref.name)
    if body is None or body["metadata"]["uid"] != ref.uid or body["metadata"].get("deletionTimestamp"):
        return
    if not takes(body.get("spec")):  # another provider's (whose emulator may run it on this host)
        return
    inst = await provider.inspect(ref)
    status = body.get("status") or {}
    if inst is None:
        if status.get("instanceID") and status.get("phase") not in ("Succeeded", "Failed"):
            # Removed behind our back: say so, as a kubelet does for a pod it lost.
            err = ProviderError(f"sandbox {status['instanceID']} no longer exists on provider {provider.name}",
                                reason="SandboxLost", retryable=False)
            await kube.patch_status(PLURAL, ref.namespace, ref.name, status_for(body, None, provider, err))
        return  # otherwise not created yet: the create handler owns that state
    await kube.patch_status(PLURAL, ref.namespace, ref.name, status_for(body, inst, provider))


async def collect_garbage(provider: SandboxLifecycle) -> list[SandboxRef]:
    """Remove sandboxes whose SandboxPod no longer exists (a finalizer removed by hand, a
    deletion that an operator killed mid-way lost). The sandboxes are listed before the
    SandboxPods: a sandbox made meanwhile belongs to a SandboxPod the second list has."""
    sandboxes = await provider.list()
    live = {(o["metadata"]["namespace"], o["metadata"]["name"], o["metadata"]["uid"])
            for o in await kube.list_objects(PLURAL)}
    removed = []
    for ref in sandboxes:
        if (ref.namespace, ref.name, ref.uid) not in live:
            log.warning("removing orphaned sandbox %s of %s/%s", ref.instance_name, ref.namespace, ref.name)
            await provider.delete(ref, 0)
            removed.append(ref)
    return removed
