"""List+watch caches: one watch connection per resource, never a request per object.

After the initial list the cache follows the watch; when the watch cannot resume
(410 Gone, errors), a fresh list replaces the cache and the differences are delivered as
events, so handlers see deletions that happened while disconnected.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable, Hashable

from .client import ApiError, KubeClient

log = logging.getLogger(__name__)

# The server closes a watch after a random 4-5 minutes, as client-go's reflector asks.
WATCH_SECONDS = (240, 300)
BACKOFF_MAX = 30.0

Handler = Callable[[str, dict, "dict | None"], None]


def _rv(obj: dict) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, ValueError, TypeError):
        return -1


def slim(obj: dict) -> dict:
    # managedFields are often the biggest part of an object and nothing here reads them.
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


class Informer:
    def __init__(self, client: KubeClient, path: str, *, name: str, key: Callable[[dict], Hashable],
                 params: dict | None = None, on_event: Handler | None = None):
        self.client = client
        self.path = path
        self.name = name
        self.key = key
        self.params = params or {}
        self.handlers: list[Handler] = [on_event] if on_event else []
        self.store: dict[Hashable, dict] = {}
        self.synced = asyncio.Event()
        self.healthy = False
        self.last_error: str | None = None
        self.unhealthy_since: float | None = None
        self.on_health_change: Callable[[], None] | None = None
        self._rv = ""

    def get(self, key: Hashable) -> dict | None:
        return self.store.get(key)

    def items(self) -> list[dict]:
        return list(self.store.values())

    def put_if_newer(self, obj: dict) -> None:
        """Take a write's response into the cache at once: reconciles right after our own
        write must not act on the stale object (the watch event follows a moment later)."""
        k = self.key(obj)
        old = self.store.get(k)
        if old is None or _rv(obj) > _rv(old):
            self._deliver("MODIFIED" if old else "ADDED", slim(obj))

    def _deliver(self, kind: str, obj: dict) -> None:
        k = self.key(obj)
        old = self.store.get(k)
        if kind == "DELETED":
            if old is None:
                return
            self.store.pop(k, None)
        else:
            if old is not None and _rv(old) > _rv(obj) >= 0:
                return  # already newer (from our own write)
            self.store[k] = obj
        for h in self.handlers:
            try:
                h(kind, obj, old)
            except Exception:
                log.exception("%s: handler failed on %s", self.name, kind)

    def _set_health(self, ok: bool, error: str | None = None) -> None:
        changed = ok != self.healthy
        self.healthy = ok
        self.last_error = error
        if ok:
            self.unhealthy_since = None
        elif self.unhealthy_since is None:
            self.unhealthy_since = time.monotonic()
        if changed and self.on_health_change:
            self.on_health_change()

    async def _relist(self) -> None:
        items, rv = await self.client.list_all(self.path, self.params)
        fresh = {self.key(o): slim(o) for o in items}
        for k, old in list(self.store.items()):
            if k not in fresh:
                self._deliver("DELETED", old)
        for obj in fresh.values():
            old = self.store.get(self.key(obj))
            if old is None or _rv(old) != _rv(obj):
                self._deliver("MODIFIED" if old else "ADDED", obj)
        self._rv = rv
        self.synced.set()

    async def run(self) -> None:
        backoff = 0.5
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                self._set_health(True)
                backoff = 0.5
                async for ev in self.client.watch(self.path, self.params, self._rv,
                                                  random.randint(*WATCH_SECONDS)):
                    kind, obj = ev.get("type"), ev.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("%s: watch error %s (%s); relisting", self.name, code, obj.get("message"))
                        need_list = True
                        break
                    self._rv = (obj.get("metadata") or {}).get("resourceVersion") or self._rv
                    if kind == "BOOKMARK":
                        continue
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._deliver(kind, slim(obj))
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status == 410:
                    need_list = True
                    continue
                self._set_health(False, str(exc))
                log.warning("%s: %s; retrying in %.1fs", self.name, exc, backoff)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:  # a bug or a malformed event: never let the watch die
                self._set_health(False, repr(exc))
                log.exception("%s: watch failed; retrying in %.1fs", self.name, backoff)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
