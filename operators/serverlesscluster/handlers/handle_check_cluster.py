"""Periodic health of a tenant: restart dead components, report conditions and usage.

The create/resume handler owns a cluster until it first reports Ready; from then on this
timer does, in every phase: a cluster it found degraded (and reported not Ready) is
checked again on every tick until it is Ready again.
"""
from __future__ import annotations

import time

import kopf

from ... import kube
from ...models.contracts import CONDITION_PROVIDER_READY
from ...providers.errors import ProviderError
from .. import cluster, credentials, idle, nodecheck, planes
from ..restarts import RestartBackoff
from ..status import cluster_status, provider_condition, sleeping_status, usage
from .handle_sleep_cluster import sleep_if_idle, sleep_message


def handed_over(memo: kopf.Memo) -> None:
    """Called by the create/resume handler once the cluster is Ready: the timer's from now."""
    memo.serving = True


async def _restart(memo: kopf.Memo, body, t, name: str, start, problems: list[str], logger) -> None:
    """Restart a dead component, or say when it will be (back-off for one that keeps dying)."""
    # kopf gives each object its own memo (a dict), kept for as long as the operator runs.
    backoff = memo.setdefault("restarts", {}).setdefault(name, RestartBackoff())
    now = time.monotonic()
    wait = backoff.due_in(now)
    if wait > 0:
        problems.append(f"{name} is down; restarting it in {wait:.0f}s")
        return
    logger.warning("%s of cluster %s is down; restarting it", name, t.name)
    try:
        await start(t)
    except Exception as exc:  # e.g. its PKI is unreadable: say so, try again later
        kopf.warn(body, reason="ComponentRestartFailed", message=f"{name} is down and did not start: {exc}")
        problems.append(f"{name} is down and did not start: {exc}")
        backoff.started(now)
        return
    backoff.started(now)
    kopf.warn(body, reason="ComponentRestarted",
              message=f"{name} was down; restarted (restart {backoff.restarts} in a row)")
    problems.append(f"{name} was down; restarted")


async def _check_account(body, t, status: dict) -> dict | None:
    """The cluster's own account, read again (a key rotated in its Secret); the
    ProviderReady condition if it changed: False while the Secret is unusable (the last
    key stays in use: the cluster's resources are still managed), True once it is again."""
    if not credentials.secret_ref(body):
        return None
    generation = body["metadata"].get("generation")
    prev = next((c for c in status.get("conditions") or [] if c.get("type") == CONDITION_PROVIDER_READY), {})
    try:
        rotated = await credentials.sync_account(body, t.sandbox_namespace)
    except ProviderError as exc:
        msg = f"provider {t.provider}: {exc}; the last key read stays in use"
        if prev.get("message") != msg:
            kopf.warn(body, reason="ProviderFailed", message=msg)
        return provider_condition(status, False, exc.reason or "ProviderError", msg, generation)
    if rotated:
        kopf.info(body, reason="CredentialsRotated", message="the key in spec.credentialsSecretRef changed; "
                                                             "the cluster's cloud calls use the new one")
    if prev.get("reason") == "MissingCredentials":
        return provider_condition(status, True, "CredentialsReady",
                                  f"provider {t.provider}: the account of spec.credentialsSecretRef is in use",
                                  generation)
    return None


async def check_cluster(body, patch: kopf.Patch, memo: kopf.Memo, logger, **_) -> None:
    if not getattr(memo, "serving", False):
        return  # the create/resume handler has not brought it up yet: it owns it until then
    plane = planes.find_claimed(body["metadata"]["uid"])
    if plane is None:
        return
    async with memo.power.lock(plane):  # not while it falls asleep or wakes
        await _check(body, patch, memo, logger, plane)


async def _check(body, patch: kopf.Patch, memo: kopf.Memo, logger, plane) -> None:
    status = body.get("status") or {}
    t = cluster.tenant_for(body, plane)
    if await cluster.on_host(idle.asleep, t.directory) is not None:  # its pods are counted all the same
        new = sleeping_status(status, body["metadata"].get("generation"),
                              status.get("message") or sleep_message(body.get("spec") or {}, True))
        new.update(usage(await kube.list_namespaced("sandboxpods", t.sandbox_namespace)))
        _update(patch, status, new)
        return
    procs = cluster.processes(t)
    problems: list[str] = []
    if not procs.running("kube-apiserver"):
        await _restart(memo, body, t, "kube-apiserver", cluster.start_apiserver, problems, logger)
    api_ok = await cluster.wait_apiserver(t, 1.0)
    node_ok = False
    if api_ok:
        # Before the virtual node is restarted: its Node must say it was gone meanwhile.
        node_ok, why = await nodecheck.check_node(t, procs.age("virtual-node"))
        if why:
            problems.append(why)
        for name, start in (("kube-controller-manager", cluster.start_controller_manager),
                            ("kube-scheduler", cluster.start_scheduler),
                            ("virtual-node", cluster.start_virtual_node)):
            if name in cluster.components(t) and not procs.running(name):
                await _restart(memo, body, t, name, start, problems, logger)
    elif not problems:
        problems.append("the tenant kube-apiserver is not ready")
    new = cluster_status(generation=body["metadata"].get("generation"), prev=status, control_plane=api_ok,
                         node=node_ok, endpoint=t.endpoint, secret=status.get("kubeconfigSecretName"),
                         sandbox_namespace=t.sandbox_namespace, version=status.get("version") or "",
                         message="; ".join(problems), node_names=t.node_names,
                         provider=await _check_account(body, t, status))
    new.update(usage(await kube.list_namespaced("sandboxpods", t.sandbox_namespace)))
    if new["phase"] == "Ready":
        new.update(await sleep_if_idle(body, t, memo, ready=True) or {})
    _update(patch, status, new)


def _update(patch: kopf.Patch, status: dict, new: dict) -> None:
    if any(new.get(k) != status.get(k) for k in new):
        patch.status.update(new)
