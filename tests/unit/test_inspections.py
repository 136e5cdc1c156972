"""Container inspections asked for together go in one podman process, never answered
from a call that began before them; containers podman does not have are None."""
from __future__ import annotations

import asyncio
import json

from operators.providers.local.inspections import Inspections
from operators.providers.local.podman import Result


class FakePodman:
    """`container inspect` answers with the containers as they are when it ends."""

    def __init__(self):
        self.containers: dict[str, dict] = {}
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, *args, check=True, timeout=0):
        assert args[:3] == ("container", "inspect", "--")
        self.calls.append(list(args[3:]))
        await self.gate.wait()
        await asyncio.sleep(0.01)
        found = [self.containers[k] for k in args[3:] if k in self.containers]
        missing = [k for k in args[3:] if k not in self.containers]
        err = f"Error: inspecting object: no such container {missing[0]}" if missing else ""
        return Result(125 if missing else 0, json.dumps(found), err)


def state(name: str, status: str) -> dict:
    return {"Id": f"id-{name}", "Name": name, "State": {"Status": status}}


async def test_requests_while_the_calls_are_busy_go_together_in_one():
    podman = FakePodman()
    for i in range(10):
        podman.containers[f"c{i}"] = state(f"c{i}", "running")
    ins = Inspections(podman, limit=2)
    podman.gate.clear()
    busy = [asyncio.create_task(ins.get([f"c{i}"])) for i in range(2)]
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(ins.get([f"c{i}", "c0"])) for i in range(2, 10)]
    await asyncio.sleep(0)
    podman.gate.set()
    results = await asyncio.gather(*busy, *waiting)
    assert len(podman.calls) == 3  # two at once, then every waiting request in one
    assert sorted(podman.calls[2]) == sorted(["c0"] + [f"c{i}" for i in range(2, 10)])  # each once
    assert [r[f"c{i}"]["Name"] for i, r in enumerate(results)] == [f"c{i}" for i in range(10)]
    assert all(r["c0"]["Name"] == "c0" for r in results[2:])


async def test_a_waiting_request_sees_what_changed_after_it_asked():
    podman = FakePodman()
    podman.containers["a"] = state("a", "running")
    ins = Inspections(podman, limit=1)
    podman.gate.clear()
    first = asyncio.create_task(ins.get(["a"]))
    await asyncio.sleep(0)  # that call has begun
    podman.containers["a"] = state("a", "exited")  # e.g. the died event a caller reacts to
    second = asyncio.create_task(ins.get(["a"]))
    await asyncio.sleep(0)
    podman.gate.set()
    # The fake answers with the state at the end of each call; what matters is the count:
    # the second request had its own call, not the first one's answer.
    await asyncio.gather(first, second)
    assert len(podman.calls) == 2
    assert second.result()["a"]["State"]["Status"] == "exited"


async def test_missing_containers_are_none_and_ids_work_too():
    podman = FakePodman()
    podman.containers["a"] = state("a", "running")
    ins = Inspections(podman)
    got = await ins.get(["gone", "a", "id-a"])
    assert got == {"gone": None, "a": podman.containers["a"], "id-a": podman.containers["a"]}
    assert podman.calls == [["gone", "a", "id-a"]]
    assert await ins.get([]) == {}


async def test_an_idle_request_does_not_wait_and_a_failed_call_reaches_every_waiter():
    class Failing(FakePodman):
        async def run(self, *args, check=True, timeout=0):
            self.calls.append(list(args[3:]))
            await self.gate.wait()
            raise RuntimeError("podman timed out")
    podman = Failing()
    ins = Inspections(podman, limit=1)
    podman.gate.clear()
    tasks = [asyncio.create_task(ins.get([f"c{i}"])) for i in range(3)]
    await asyncio.sleep(0)
    podman.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(podman.calls) == 2
    assert ins._running == 0 and not ins._waiting  # nothing left stuck for the next request


async def test_snapshots_hold_until_stale_and_a_call_under_way_at_a_change_is_not_kept():
    from operators.providers.local.inspections import Snapshots
    podman = FakePodman()
    podman.containers["a"] = state("a", "running")
    snaps = Snapshots(Inspections(podman))
    await snaps.get("pod", ["a"])
    await snaps.get("pod", ["a"])
    assert len(podman.calls) == 1
    podman.gate.clear()
    under_way = asyncio.create_task(snaps.get("pod", ["a", "b"]))
    await asyncio.sleep(0)
    snaps.stale("pod")  # e.g. a died event while podman answers
    podman.containers["a"] = state("a", "exited")
    podman.gate.set()
    await under_way
    got = await snaps.get("pod", ["a"])
    assert len(podman.calls) == 3 and got["a"]["State"]["Status"] == "exited"
    await snaps.get("other", ["a"])  # another pod's snapshot is its own
    assert len(podman.calls) == 4
    snaps.stale_all()
    await snaps.get("pod", ["a"])
    assert len(podman.calls) == 5
    snaps.forget("pod")
    await snaps.get("pod", ["a"])
    assert len(podman.calls) == 6


async def test_a_request_joins_the_pods_inspection_under_way_unless_a_change_came_since():
    from operators.providers.local.inspections import Snapshots
    podman = FakePodman()
    podman.containers["a"] = state("a", "running")
    podman.containers["b"] = state("b", "running")
    snaps = Snapshots(Inspections(podman))
    podman.gate.clear()
    first = asyncio.create_task(snaps.get("pod", ["a", "b"]))
    await asyncio.sleep(0)
    joined = asyncio.create_task(snaps.get("pod", ["a"]))  # the status refresh, 50 ms after the kubelet's look
    wider = asyncio.create_task(snaps.get("pod", ["a", "c"]))  # wants more than that call asks for
    await asyncio.sleep(0)
    snaps.stale("pod")
    after_change = asyncio.create_task(snaps.get("pod", ["a"]))
    await asyncio.sleep(0)
    podman.gate.set()
    await asyncio.gather(first, joined, wider, after_change)
    assert len(podman.calls) == 3  # first (joined), wider, after_change: not four
    assert joined.result() == {"a": podman.containers["a"]}
    assert wider.result()["c"] is None
