"""Sleep mode's handlers: an idle tenant falls asleep (from the health timer), a woken one
is reported, and `sk8s cluster sleep|wake` (an annotation) forces either."""
from __future__ import annotations

import logging
import time

import kopf

from ... import API_VERSION, kube
from ...models.contracts import ANNOTATION_POWER_REQUEST
from ...conditions import now_rfc3339
from .. import cluster, idle, planes
from ..status import cluster_status, sleeping_status

log = logging.getLogger(__name__)
COMPONENT = "sk8s-serverlesscluster"


async def _event(namespace: str, name: str, uid: str, reason: str, message: str) -> None:
    """An Event from outside a handler (kopf's posting needs a handler's context)."""
    now = now_rfc3339()
    try:
        await kube.create_event(namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name[:200]}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": "ServerlessCluster", "name": name,
                               "namespace": namespace, "uid": uid},
            "reason": reason, "message": message, "type": "Normal", "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "firstTimestamp": now, "lastTimestamp": now, "count": 1})
    except Exception as exc:  # best effort, as kopf's own
        log.debug("event %s on %s/%s not recorded: %s", reason, namespace, name, exc)


def sleep_message(spec: dict, forced: bool) -> str:
    why = "asked to sleep" if forced else f"idle for {idle_seconds(spec)}s"
    return f"{why}: the control plane sleeps; the first request to its endpoint wakes it"


def idle_seconds(spec: dict) -> int:
    return int(spec.get("sleepAfterIdleSeconds") or idle.DEFAULT_IDLE_SECONDS)


async def _blocker(t) -> str | None:
    try:
        async with cluster.tenant_client(t) as tc:
            cronjobs = (await tc.get("/apis/batch/v1/cronjobs")).get("items") or []
            hpas = (await tc.get("/apis/autoscaling/v2/horizontalpodautoscalers")).get("items") or []
    except Exception as exc:  # cannot tell: awake until the next tick can
        return f"its CronJobs and HorizontalPodAutoscalers could not be read: {exc}"
    return idle.sleep_blocker(cronjobs, hpas)


async def sleep_if_idle(body, t, memo: kopf.Memo, ready: bool) -> dict | None:
    """From the health timer, which holds the plane's lock: the Sleeping status if it fell asleep."""
    spec = body.get("spec") or {}
    idle_for = idle.idle_for(t.directory)
    if not idle.should_sleep(bool(spec.get("sleepWhenIdle")), idle_for, idle_seconds(spec), ready):
        return None
    why = await _blocker(t)
    if why:
        if memo.get("sleep_blocked") != why:
            memo["sleep_blocked"] = why
            kopf.info(body, reason="SleepBlocked", message=f"idle, but stays awake: {why}")
        return None
    memo.pop("sleep_blocked", None)
    return await _sleep(body, t, memo, forced=False)


async def _sleep(body, t, memo: kopf.Memo, forced: bool) -> dict | None:
    spec = body.get("spec") or {}
    try:
        await memo.power.sleep(t, t.namespace, t.name)
    except RuntimeError as exc:
        if memo.get("sleep_failed") != str(exc):
            memo["sleep_failed"] = str(exc)
            kopf.warn(body, reason="SleepFailed", message=f"stays awake: {exc}")
        return None
    msg = sleep_message(spec, forced)
    kopf.info(body, reason="Sleeping", message=msg)
    return sleeping_status(body.get("status") or {}, body["metadata"].get("generation"), msg)


async def on_woken(plane: planes.Plane, info: dict, took: float, why: str) -> None:
    """Power's callback, once the woken apiserver is ready: an Event, and the status Ready at
    once (the virtual node, Ready when it fell asleep, is starting; the health timer checks
    it). Nothing here asks the tenant anything (the operator's requests never wake it)."""
    namespace, name, uid = info.get("namespace"), info.get("name"), plane.claimed_by
    if not (namespace and name and uid):
        return
    await _event(namespace, name, uid, "Woken", f"woken by {why}: the tenant kube-apiserver answered in {took:.2f}s")
    body = await kube.get_object("serverlessclusters", namespace, name)
    if body is None or await cluster.on_host(idle.asleep, plane.directory) is not None:
        return  # gone, or asleep again already
    t = cluster.tenant_for(body, plane)
    prev = body.get("status") or {}
    await kube.patch_status("serverlessclusters", namespace, name, cluster_status(
        generation=body["metadata"].get("generation"), prev=prev, control_plane=True, node=True,
        endpoint=t.endpoint, secret=prev.get("kubeconfigSecretName"), sandbox_namespace=t.sandbox_namespace,
        version=prev.get("version") or "", node_names=t.node_names))


async def power_request(body, meta, patch: kopf.Patch, memo: kopf.Memo, **_) -> None:
    """`sk8s cluster sleep|wake NAME`: the annotation's request, carried out, then removed. A
    cluster not handed to its health timer yet (being created or resumed) keeps the request
    until it is; a Failed one refuses it."""
    want = (meta.get("annotations") or {}).get(ANNOTATION_POWER_REQUEST)
    phase = (body.get("status") or {}).get("phase")
    if want not in ("sleep", "wake") or phase == "Failed":
        why = (f"metadata.annotations[{ANNOTATION_POWER_REQUEST}]: {want!r} is not 'sleep' or 'wake'"
               if want not in ("sleep", "wake") else f"cannot {want}: the cluster is Failed")
        kopf.warn(body, reason="InvalidPowerRequest" if phase != "Failed" else "PowerRequestRefused", message=why)
        _taken(patch)
        return
    plane = await cluster.on_host(planes.find_claimed, meta["uid"])
    if plane is None or not getattr(memo, "serving", False):
        raise kopf.TemporaryError(f"{want}: the cluster is not up yet; the request waits", delay=5)
    if want == "wake":
        t0 = time.monotonic()
        if await memo.power.wake(plane, "sk8s cluster wake") is None:
            raise kopf.TemporaryError("the tenant kube-apiserver did not start; trying again", delay=10)
        kopf.info(body, reason="WakeRequested", message=f"awake in {time.monotonic() - t0:.2f}s")
    else:
        async with memo.power.lock(plane):
            if await cluster.on_host(idle.asleep, plane.directory) is None:
                patch.status.update(await _sleep(body, cluster.tenant_for(body, plane), memo, forced=True) or {})
    _taken(patch)


def _taken(patch: kopf.Patch) -> None:
    patch.metadata.setdefault("annotations", {})[ANNOTATION_POWER_REQUEST] = None
