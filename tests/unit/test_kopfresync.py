"""The resync of kopf-run kinds touches only objects whose pending work saw no event for a
whole period, and never one whose handler retry is still to come."""
from __future__ import annotations

import datetime

from operators.kopfresync import DIFFBASE_ANNOTATION, pending, stalled

NOW = datetime.datetime(2026, 11, 30, 11, 0, tzinfo=datetime.timezone.utc)
FIN = "sk8s.io/sandbox"


def obj(uid: str, rv: str, *, processed=False, deleting=False, finalizers=(FIN,), delayed=None, done=False):
    meta = {"name": uid, "namespace": "ns", "uid": uid, "resourceVersion": rv, "finalizers": list(finalizers),
            "annotations": {DIFFBASE_ANNOTATION: "{}"} if processed else {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T10:59:00Z"
    body = {"metadata": meta}
    if delayed:
        body["status"] = {"kopf": {"progress": {"sandbox": {"delayed": delayed, "success": done}}}}
    return body


def test_pending_is_creation_not_processed_or_deletion_with_the_finalizer_on():
    assert pending(obj("a", "1"), FIN)
    assert not pending(obj("a", "1", processed=True), FIN)
    assert pending(obj("a", "1", processed=True, deleting=True), FIN)
    assert not pending(obj("a", "1", processed=True, deleting=True, finalizers=()), FIN)


def test_touched_only_after_a_whole_period_without_a_change():
    first, seen = stalled([obj("a", "5")], {}, FIN, NOW)
    assert first == []  # seen once: it may be in the middle of being handled
    second, seen = stalled([obj("a", "5")], seen, FIN, NOW)
    assert [o["metadata"]["uid"] for o in second] == ["a"]
    moved, _ = stalled([obj("a", "6")], seen, FIN, NOW)
    assert moved == []  # something happened to it meanwhile


def test_processed_objects_are_left_alone_and_forgotten():
    touch, seen = stalled([obj("a", "5", processed=True)], {"a": "5"}, FIN, NOW)
    assert touch == [] and seen == {}


def test_a_retry_still_to_come_is_left_to_kopf():
    later = (NOW + datetime.timedelta(seconds=40)).isoformat()
    earlier = (NOW - datetime.timedelta(seconds=40)).isoformat()
    touch, _ = stalled([obj("a", "5", delayed=later)], {"a": "5"}, FIN, NOW)
    assert touch == []
    touch, _ = stalled([obj("a", "5", delayed=earlier)], {"a": "5"}, FIN, NOW)
    assert len(touch) == 1  # its own touch was lost too
    touch, _ = stalled([obj("a", "5", delayed="2026-11-30T11:00:40.5")], {"a": "5"}, FIN, NOW)
    assert touch == []  # kopf's naive UTC timestamps


async def test_watched_means_kopf_runs_a_watcher_task_for_the_kind():
    import asyncio
    from operators.kopfresync import watched
    assert not watched("servicelbs")
    task = asyncio.create_task(asyncio.sleep(10), name="watcher for servicelbs.v1alpha1.sk8s.io@None")
    try:
        assert watched("servicelbs") and not watched("sandboxpods") and not watched("servicelb")
    finally:
        task.cancel()


async def test_an_operator_whose_kopf_watches_nothing_stops_itself(monkeypatch):
    import asyncio
    import signal
    from operators import kopfresync
    killed = []
    monkeypatch.setattr(kopfresync.os, "kill", lambda pid, sig: killed.append(sig))

    async def no_objects(plural):
        return []
    monkeypatch.setattr(kopfresync.kube, "list_objects", no_objects)
    await asyncio.wait_for(kopfresync.resync("servicelbs", FIN, period=0.01), 2)
    assert killed == [signal.SIGTERM]
