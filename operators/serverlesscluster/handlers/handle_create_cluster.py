"""Bring a tenant control plane up (create), or back (resume after an operator restart)."""
from __future__ import annotations

import time

import kopf

from ... import kube
from ...models.contracts import (DEFAULT_VERSION, LABEL_CLUSTER, LABEL_CLUSTER_UID, LABEL_PROVIDER,
                                REASON_PROVIDER_UNAVAILABLE)
from ...kubeclient.client import ApiError
from ...config import aliyun_settings
from ...providers import available_providers
from ...providers.errors import ProviderError
from .. import claims, cluster, credentials, idle, nodecheck
from ..status import cluster_status, provider_condition, sleeping_status
from .handle_check_cluster import handed_over

APISERVER_TIMEOUT = 90
NODE_TIMEOUT = 30


def unavailable(provider: str, region: str | None = None) -> str | None:
    """Why a tenant cluster cannot run on `provider` (in `region`), or None."""
    if provider not in available_providers():
        return f"provider {provider!r} is not available here (available: {', '.join(available_providers())})"
    served = aliyun_settings()["region"] if provider == "aliyun" else None
    if served and region != served:
        return f"spec.region: {region!r} is not a region this installation's {provider} account serves ({served})"
    return None


async def ensure_cluster(body, patch: kopf.Patch, memo: kopf.Memo, logger, reason: str, retry: int = 0,
                         **_) -> None:
    t0 = time.monotonic()
    spec = body.get("spec") or {}
    meta = body["metadata"]
    prev = dict(body.get("status") or {})
    provider = spec.get("provider", "local")
    if msg := unavailable(provider, spec.get("region")):
        patch.status.update(cluster_status(generation=meta.get("generation"), prev=prev, control_plane=False,
                                           node=False, endpoint=None, secret=None, sandbox_namespace="",
                                           version=spec.get("version", ""), message=msg,
                                           failed=REASON_PROVIDER_UNAVAILABLE))
        raise kopf.PermanentError(msg)
    if await _still_asleep(plane := await _claim(meta["uid"], memo, first=reason == "create" and retry == 0),
                           patch, memo, prev, meta.get("generation")):
        return
    t = cluster.tenant_for(body, plane)
    base = dict(generation=meta.get("generation"), prev=prev, sandbox_namespace=t.sandbox_namespace,
                version=spec.get("version", DEFAULT_VERSION), node_names=t.node_names)
    procs = cluster.processes(t)
    if prev.get("phase") == "Ready" and not all(procs.running(n) for n in cluster.components(t)):
        # Coming back (after `sk8s down` or a crash): say so at once, so that nobody waiting
        # for Ready is answered by the status of the control plane that went away.
        await kube.patch_status("serverlessclusters", t.namespace, t.name, cluster_status(
            control_plane=False, node=False, endpoint=t.endpoint, secret=prev.get("kubeconfigSecretName"),
            message="restarting the tenant control plane", **base))
    await kube.ensure_namespace(t.sandbox_namespace, namespace_labels(t, provider))
    steps = {"namespace": time.monotonic() - t0}
    # Before the plane's waiting virtual node is handed its arguments, which name this file.
    await cluster.write_meta_credentials(t)
    steps["credentials"] = time.monotonic() - t0
    # The VPC first: the plane's virtual node (started with its arguments by warm_up) and
    # the operators it drives would otherwise make the VPC lazily with a range of their own.
    resolver = await _build_network(body, patch, t, provider, base)
    if not await cluster.warm_up(t, APISERVER_TIMEOUT):  # a no-op for a warm standby plane
        raise kopf.TemporaryError(f"tenant apiserver not ready; see {cluster.logs_hint(t, 'kube-apiserver')}",
                                  delay=5)
    steps["control plane"] = time.monotonic() - t0
    await _reserve_resolver(body, t, resolver)
    if t.network:
        patch.status["network"] = t.network.status()
    steps["network"] = time.monotonic() - t0
    await cluster.start_scheduler(t)  # several virtual nodes only: it binds their pods
    await cluster.start_virtual_node(t)
    secret = cluster.kubeconfig_secret(t)
    kopf.adopt(secret, owner=body)
    await kube.apply_secret(t.namespace, secret)
    if not await nodecheck.wait_node(t, NODE_TIMEOUT):
        patch.status.update(cluster_status(control_plane=True, node=False, endpoint=t.endpoint,
                                           secret=secret["metadata"]["name"], **base))
        raise kopf.TemporaryError(f"virtual node not Ready; see {cluster.logs_hint(t, 'virtual-node')}", delay=2)
    patch.status.update(cluster_status(control_plane=True, node=True, endpoint=t.endpoint,
                                       secret=secret["metadata"]["name"], **base))
    handed_over(memo)  # the health timer keeps it Ready from now on
    if reason == "create":
        kopf.info(body, reason="Ready",
                  message=f"tenant control plane at {t.endpoint} Ready in {time.monotonic() - t0:.2f}s")
    steps["node"] = time.monotonic() - t0
    logger.info("cluster %s ready (%s, plane %s) in %.2fs: %s", t.name, reason, plane.id, steps["node"],
                ", ".join(f"{k} at {v:.2f}s" for k, v in steps.items()))


async def _still_asleep(plane, patch: kopf.Patch, memo: kopf.Memo, prev: dict, generation: int | None) -> bool:
    """Asleep before the operator restarted: it stays so until a request wakes it."""
    if await cluster.on_host(idle.asleep, plane.directory) is None:
        return False
    patch.status.update(sleeping_status(prev, generation, prev.get("message") or "asleep"))
    handed_over(memo)
    return True


async def _claim(uid: str, memo: kopf.Memo, first: bool):
    plane = await claims.claim_plane(uid)
    if first:
        memo.pool_demand.claimed()  # the pool grows with the creations of the last minutes
    memo.pool_wake.set()  # refill the standby pool behind us
    return plane


def namespace_labels(t, provider: str) -> dict[str, str]:
    """The tenant's meta namespace says whose it is (tenancy.py), and its provider."""
    return {LABEL_CLUSTER: t.name, LABEL_CLUSTER_UID: t.uid, **({LABEL_PROVIDER: provider} if provider != "local" else {})}


async def _build_network(body, patch: kopf.Patch, t, provider: str, base: dict) -> str | None:
    """The tenant's VPC, built with its plane's address plan; its resolver's address. The
    first call to the provider's account: whether it takes it is the ProviderReady condition
    (`base` carries it into every status this run writes), with the cloud's code as reason.
    Nothing of the cluster is made in the cloud before it (the plane is local)."""
    prev, generation = base["prev"], base["generation"]
    try:
        await credentials.sync_account(body, t.sandbox_namespace)  # the account every later call uses
        resolver = await cluster.build_network(t, provider)
    except ProviderError as exc:
        msg = f"provider {provider}: building the tenant's VPC: {exc}"
        if exc.reason == "MissingCredentials":
            msg = f"provider {provider}: {exc}"
        base["provider"] = provider_condition(prev, False, exc.reason or "ProviderError", msg, generation)
        patch.status.update(cluster_status(control_plane=False, node=False, endpoint=None, secret=None,
                                           message=msg, waiting="ProviderFailed", **base))
        kopf.warn(body, reason="ProviderFailed", message=msg)
        # A refused key or a missing VSwitch takes a person to fix: ask again less often.
        raise kopf.TemporaryError(msg, delay=5 if exc.retryable else 20) from exc
    built = f"the tenant's VPC {t.network.vpc_cidr} is built" if t.network else "the tenant's network is ready"
    base["provider"] = provider_condition(prev, True, "NetworkReady", f"provider {provider}: {built}", generation)
    return resolver


async def _reserve_resolver(body, t, resolver: str | None) -> None:
    if not resolver:
        return
    try:
        await cluster.reserve_resolver(t, resolver)
    except ApiError as exc:  # e.g. the address was given to a Service meanwhile: say so
        kopf.warn(body, reason="ResolverAddressTaken", message=f"kube-system/kube-dns at {resolver}: {exc}")
