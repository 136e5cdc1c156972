"""`podman container inspect` of many containers in one podman process, for every pod
asking at about the same time.

Each pod's kubelet and the status refresh inspect containers after every `podman run`
and every start or exit event: in a burst of 100 pods that was 300 `container inspect`
and 101 `pod inspect` processes (188 s summed over an 85 s burst, bench/burst_profile.py),
each paying podman's own start-up and contending on its locks. Here at most `limit`
inspections run at once; a request arriving while they are all busy waits for the next
one, which asks for every waiting request's containers together. A request is never
answered from a call that began before it (the caller wants the state after an event it
has seen), and an idle runtime answers at once, with no gathering delay.

podman answers the containers it has and exits 125 naming the first one it has not
(`no such container`): those are None.
"""
from __future__ import annotations

import asyncio
import json

from .podman import Podman


class Inspections:
    def __init__(self, podman: Podman, limit: int = 2):
        self.podman = podman
        self.limit = limit
        self._running = 0
        self._waiting: list[tuple[list[str], asyncio.Future]] = []
        self._tasks: set[asyncio.Task] = set()

    async def get(self, keys: list[str]) -> dict[str, dict | None]:
        """Each key (a container's name or full id) -> its inspection, or None if podman has
        no such container."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        if self._running < self.limit and not self._waiting:
            self._running += 1
            try:
                return pick(await self._inspect(keys), keys)
            finally:
                self._done()
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, future))
        return await future

    def _done(self) -> None:
        """One call ended: the requests waiting meanwhile go together in the next."""
        self._running -= 1
        if self._waiting and self._running < self.limit:
            batch, self._waiting = self._waiting, []
            self._running += 1
            task = asyncio.create_task(self._serve(batch), name="podman container inspect")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        try:
            found = await self._inspect(list(dict.fromkeys(k for keys, _ in batch for k in keys)))
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._done()
        for keys, future in batch:
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(pick(found, keys))

    async def _inspect(self, keys: list[str]) -> list[dict]:
        res = await self.podman.run("container", "inspect", "--", *keys, check=False)
        try:
            data = json.loads(res.out or "[]")
        except ValueError:
            return []
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def pick(found: list[dict], keys: list[str]) -> dict[str, dict | None]:
    """The inspections asked for by `keys` (names, as podman writes them with or without
    their leading slash, or full ids)."""
    by_key: dict[str, dict] = {}
    for d in found:
        by_key[d.get("Id", "")] = d
        by_key[str(d.get("Name", "")).lstrip("/")] = d
    return {k: by_key.get(k) for k in keys}


class Snapshots:
    """Each pod's last container inspections, answered again until the pod's state may have
    changed: a burst's pod was inspected three times in its first second (its kubelet after
    `podman run`, then two status refreshes), and a probe result's refresh inspected podman
    again though only the kubelet's part had changed.

    What can change a container's state is this runtime's own action (run, start, stop,
    rename, remove: `stale` once it has returned) or its exit, which podman's `died` event
    tells (the provider calls `stale` before anything reacts to the event; a reconnected
    event stream, which may have missed some, makes every pod `stale`). Starts come only
    from this runtime (restart policy `no`), so their events need nothing here. An
    inspection stored is one that began after the pod's last such change (`epoch`): one
    that was under way when a change came is used by its caller but not kept. By the same
    rule a request joins the pod's inspection under way if that one began after the pod's
    last change and asks for every container it wants (the kubelet's first look after
    `podman run` and the status refresh the run's event brings, 50 ms apart)."""

    def __init__(self, inspections: Inspections):
        self.inspections = inspections
        self._epoch: dict[object, int] = {}
        self._seen: dict[object, dict[str, tuple[int, dict]]] = {}
        self._flights: dict[object, tuple[int, set[str], asyncio.Future]] = {}

    async def get(self, pod, keys: list[str]) -> dict[str, dict | None]:
        epoch = self._epoch.setdefault(pod, 0)
        seen = self._seen.get(pod, {})
        if keys and all(k in seen and seen[k][0] == epoch for k in keys):
            return {k: seen[k][1] for k in keys}
        flight = self._flights.get(pod)
        if flight and flight[0] == epoch and set(keys) <= flight[1]:
            found = await asyncio.shield(flight[2])
            return {k: found.get(k) for k in keys}
        task = asyncio.ensure_future(self.inspections.get(keys))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if nobody waits
        self._flights[pod] = (epoch, set(keys), task)
        try:
            found = await asyncio.shield(task)
        finally:
            if pod in self._flights and self._flights[pod][2] is task:
                del self._flights[pod]
        if self._epoch.get(pod) == epoch:
            kept = self._seen.setdefault(pod, {})
            kept.update({k: (epoch, d) for k, d in found.items() if d is not None})
        return found

    def stale(self, pod) -> None:
        if pod in self._epoch:
            self._epoch[pod] += 1
        self._seen.pop(pod, None)

    def stale_all(self) -> None:
        for pod in list(self._epoch):
            self.stale(pod)

    def forget(self, pod) -> None:
        self._epoch.pop(pod, None)
        self._seen.pop(pod, None)
