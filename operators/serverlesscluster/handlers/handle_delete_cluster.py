"""Delete a tenant: its sandboxes, control plane processes, stored data and credentials."""
from __future__ import annotations

import kopf

from ... import kube
from ...providers import forget_account
from ...providers.errors import ProviderError
from ...tenancy import sandbox_namespace
from .. import cluster, planes


async def delete_cluster(body, memo: kopf.Memo, logger, **_) -> None:
    meta = body["metadata"]
    sandbox_ns = sandbox_namespace(meta["name"], meta["uid"])
    plane = planes.find_claimed(meta["uid"])
    if plane:
        # First, so that nothing re-creates sandboxes meanwhile.
        await cluster.stop_component(cluster.plane_tenant(plane), "virtual-node")
    # Deleting the namespace deletes the SandboxPods; their finalizers remove the sandboxes.
    await kube.delete_namespace(sandbox_ns)
    phase = await kube.namespace_phase(sandbox_ns)
    if phase is not None:
        raise kopf.TemporaryError(f"waiting for namespace {sandbox_ns} ({phase}) to go", delay=1)
    if plane:
        await memo.power.forget(plane)  # asleep: its port leaves the wake rule (the port may be reused)
        await cluster.destroy_plane(plane)
    provider = (body.get("spec") or {}).get("provider", "local")
    try:
        # The cloud's network goes last: its VSwitches hold until their groups and LBs are gone.
        await cluster.provider(provider).release_cluster(meta["uid"])
    except ProviderError as exc:
        kopf.warn(body, reason="ProviderFailed", message=f"provider {provider}: releasing the tenant's network: {exc}")
        raise kopf.TemporaryError(f"releasing the tenant's network: {exc}", delay=2 if exc.retryable else 20) from exc
    forget_account(provider, meta["uid"])  # its resources are gone: nothing calls the cloud for it again
    await kube.delete_secret(meta["namespace"], f"{meta['name']}-kubeconfig")
    logger.info("cluster %s deleted", meta["name"])
