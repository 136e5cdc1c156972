"""A resync for the kinds kopf runs: objects whose pending work no event will bring back.

kopf acts on watch events only and has no resync period (client-go's informers deliver
every object again periodically). It adds its finalizer to a new object and runs the
creation handlers on the MODIFIED event that the patch causes; it sleeps before a retry
and then touches the object to cause another event. An event lost while the meta
apiserver restarts (the churn test kills it) leaves such an object alone for ever: seen as
a SandboxPod with its finalizer and no status, its tenant pod ContainerCreating for
minutes. So each operator lists its objects every RESYNC_SECONDS and touches those with
work pending that did not change during a whole period: creation not processed yet (no
diff-base annotation), or deletion asked while its finalizer is still on; unless a retry
is still to come. The touch is kopf's own (`status.kopf.dummy`): it changes nothing that
a handler sees, only causes the event.

A touch cannot help an operator whose kopf watches nothing: kopf resolves its resources
from discovery once, after the startup handlers, and again only when a CRD changes; an
apiserver that restarts right then serves no CRD for a moment (the churn test saw a
ServiceLB operator with "Unresolved resources cannot be served" that never processed
another ServiceLB). So the same loop checks that kopf has a watcher for the kind, and an
operator without one for DEAF_PASSES passes in a row stops (SIGTERM, kopf's graceful
stop): its supervisor (or Deployment) starts it again, and its startup waits until the
kind is served.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import signal

from . import kube
from .kopfsettings import DIFFBASE_KEY
from .models.contracts import KOPF_ANNOTATION_PREFIX

log = logging.getLogger(__name__)
RESYNC_SECONDS = 20.0
DEAF_PASSES = 2
DIFFBASE_ANNOTATION = f"{KOPF_ANNOTATION_PREFIX}/{DIFFBASE_KEY}"


def _retry_to_come(obj: dict, now: datetime.datetime) -> bool:
    progress = ((obj.get("status") or {}).get("kopf") or {}).get("progress") or {}
    for record in progress.values():
        delayed = (record or {}).get("delayed")
        if delayed and not (record.get("success") or record.get("failure")):
            try:
                when = datetime.datetime.fromisoformat(delayed.replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            if when > now:
                return True
    return False


def pending(obj: dict, finalizer: str, diffbase: str = DIFFBASE_ANNOTATION) -> bool:
    """Work that kopf still owes this object."""
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        return finalizer in (meta.get("finalizers") or [])
    return diffbase not in (meta.get("annotations") or {})


def stalled(objects: list[dict], seen: dict[str, str], finalizer: str,
            now: datetime.datetime, diffbase: str = DIFFBASE_ANNOTATION) -> tuple[list[dict], dict[str, str]]:
    """(objects to touch, what to remember for the next pass): an object is touched when
    it has work pending, had the same resourceVersion one period ago, and no retry of a
    handler is still to come. Pure."""
    touch, remember = [], {}
    for obj in objects:
        if not pending(obj, finalizer, diffbase):
            continue
        meta = obj["metadata"]
        rv = meta.get("resourceVersion", "")
        remember[meta["uid"]] = rv
        if seen.get(meta["uid"]) == rv and not _retry_to_come(obj, now):
            touch.append(obj)
    return touch, remember


def watched(plural: str) -> bool:
    """Whether kopf runs a watcher for `plural` in this event loop (its task is named
    "watcher for <plural>.<version>.<group>@<namespace>")."""
    prefix = f"watcher for {plural}."
    return any(t.get_name().startswith(prefix) and not t.done() for t in asyncio.all_tasks())


async def resync(plural: str, finalizer: str, period: float = RESYNC_SECONDS, *,
                 diffbase: str = DIFFBASE_ANNOTATION, accept=None) -> None:
    """Until cancelled: every `period`, touch the objects of `plural` that `stalled` names;
    stop the operator when kopf has had no watcher for them for DEAF_PASSES passes.
    `accept(spec)`: the objects this operator's handlers take (their `when=` filter)."""
    seen: dict[str, str] = {}
    deaf = 0
    while True:
        await asyncio.sleep(period)
        deaf = 0 if watched(plural) else deaf + 1
        if deaf >= DEAF_PASSES:
            log.error("kopf has not watched %s for %.0fs (its discovery missed them while the apiserver "
                      "restarted); stopping, to be started again", plural, deaf * period)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        try:
            now = datetime.datetime.now(datetime.timezone.utc)
            objects = [o for o in await kube.list_objects(plural) if accept is None or accept(o.get("spec"))]
            touch, seen = stalled(objects, seen, finalizer, now, diffbase)
            for obj in touch:
                meta = obj["metadata"]
                log.warning("%s %s/%s: pending work saw no event for %.0fs; touching it",
                            plural, meta.get("namespace"), meta["name"], period)
                await kube.patch_status(plural, meta.get("namespace"), meta["name"],
                                        {"kopf": {"dummy": now.isoformat()}})
        except asyncio.CancelledError:
            raise
        except Exception:  # the apiserver restarting, say: the next pass tries again
            log.exception("resync of %s failed", plural)


def start(memo, plural: str, finalizer: str, *, diffbase: str = DIFFBASE_ANNOTATION, accept=None) -> None:
    """Once per operator process (a startup handler may run again after a failure)."""
    if getattr(memo, "resync", None) is None:
        memo.resync = asyncio.create_task(resync(plural, finalizer, diffbase=diffbase, accept=accept))
