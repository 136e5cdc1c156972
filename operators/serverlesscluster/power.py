"""Sleep and wake of tenant control planes (sleep mode; the design in idle.py and wake.py).

Sleep: the tenant's port joins the wake rule's set first (from then on new connections
wait at the wake listener), the plane is marked ASLEEP with what ran, then its processes
stop. Its pods, their load balancers and DNS are the meta-cluster's and keep serving.
Wake: the apiserver starts on the same port (the rule still diverts clients), and once it
answers the port leaves the set, the waiting connections are relayed, and the
controller-manager, scheduler and virtual node start behind them.

One Power per operator process. A plane asleep stays asleep across operator restarts
(its ASLEEP file); the table is rebuilt at start with the new listener's port.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Awaitable, Callable

from ..providers.local import nft
from . import cluster, idle, planes, wakerules
from . import controlplane as cp
from .runners import runner
from .wake import WakeListener, apiserver_answers, listens

log = logging.getLogger(__name__)
WAKE_TIMEOUT = 60.0
# Woken: (plane, what its ASLEEP file said, seconds the apiserver took, what woke it)
OnWoken = Callable[[planes.Plane, dict, float, str], Awaitable[None]]


class Power:
    def __init__(self, on_woken: OnWoken | None = None):
        self.listener = WakeListener(self.wake_port)
        self.on_woken = on_woken
        self._waking: dict[int, asyncio.Task] = {}
        self._listening: dict[int, asyncio.Event] = {}  # set once a waking apiserver listens
        self._background: set[asyncio.Task] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._context = contextvars.copy_context()
        self.unavailable: str | None = None  # why no tenant can sleep here (no nftables)

    def lock(self, plane: planes.Plane) -> asyncio.Lock:
        """Held by whoever changes or checks a plane's processes: sleep, wake, the health timer."""
        return self._locks.setdefault(plane.id, asyncio.Lock())

    async def start(self) -> None:
        # The wake listener's connections run in the loop's bare context; the tasks started
        # here get the operator's (kopf posts Events through context variables).
        self._context = contextvars.copy_context()
        if runner().sleep_unavailable:
            self.unavailable = runner().sleep_unavailable
            log.info("%s", self.unavailable)
            return
        port = await self.listener.start()
        sleeping = await cluster.on_host(lambda: [p.apiserver_port for p in planes.all_planes()
                                                  if idle.asleep(p.directory)])
        try:
            await _nft(wakerules.table_script(port, sleeping))
        except (RuntimeError, OSError) as exc:  # the operator runs on; tenants stay awake
            self.unavailable = f"sleep mode is unavailable on this host: {exc}"
            log.error("%s", self.unavailable)
            return
        log.info("wake listener on 127.0.0.1:%d; %d tenant(s) asleep", port, len(sleeping))

    async def stop(self) -> None:
        await self.listener.stop()
        for task in [*self._waking.values(), *self._background]:
            task.cancel()

    async def sleep(self, t, namespace: str, name: str) -> None:
        """The caller holds lock(plane). Raises RuntimeError if it cannot (nothing changed)."""
        if self.unavailable:
            raise RuntimeError(self.unavailable)
        procs = cluster.processes(t)
        ran = [n for n in planes.STOP_ORDER if procs.running(n)]
        # The plane's own clients stop before the port is held: a controller-manager or virtual
        # node opening a connection while it shuts down would otherwise reach the wake
        # listener and wake the plane again as soon as this sleep ends.
        clients = [n for n in planes.STOP_ORDER if n != "kube-apiserver"]
        await cluster.on_host(lambda: [procs.stop(n, timeout=10) for n in clients])
        await _nft(wakerules.hold(t.ports.apiserver))
        await cluster.on_host(idle.mark_asleep, t.directory, ran, namespace, name)
        await cluster.on_host(procs.stop_all, order=planes.STOP_ORDER, timeout=10)

    async def forget(self, plane: planes.Plane) -> None:
        """A plane being destroyed: its port no longer leads here."""
        if self.unavailable:  # no rule was ever made: nothing here can be asleep
            self._locks.pop(plane.id, None)
            return
        async with self.lock(plane):
            await _nft(wakerules.release(plane.apiserver_port))
            await cluster.on_host(idle.mark_awake, plane.directory)
        self._locks.pop(plane.id, None)

    async def wake_port(self, port: int, loopback: bool = False) -> bool:
        """The wake listener's: the plane whose endpoint is `port` (awake, or woken now).
        `loopback`: a waking apiserver's own connection, let through once it listens."""
        if loopback:
            event = self._listening.get(port)
            if event is not None:
                await event.wait()
            return True
        plane = await cluster.on_host(lambda: next((p for p in planes.all_planes() if p.apiserver_port == port),
                                                   None))
        if plane is None:
            return False
        return await self.wake(plane, "a request to its endpoint") is not None

    async def wake(self, plane: planes.Plane, why: str) -> float | None:
        """Seconds the apiserver took to answer (0 if it was awake); None if it did not."""
        port = plane.apiserver_port
        if port not in self._waking:
            self._listening[port] = asyncio.Event()
            task = asyncio.create_task(self._wake(plane, why), context=self._context)
            self._waking[port] = task

            def done(_) -> None:
                self._waking.pop(port, None)
                self._listening.pop(port).set()  # nothing waits for a wake that ended
            task.add_done_callback(done)
        return await asyncio.shield(self._waking[plane.apiserver_port])

    async def _wake(self, plane: planes.Plane, why: str) -> float | None:
        async with self.lock(plane):
            return await self._wake_locked(plane, why)

    async def _wake_locked(self, plane: planes.Plane, why: str) -> float | None:
        info = await cluster.on_host(idle.asleep, plane.directory)
        if info is None:  # awake: its port should not be held (a crash between hold and mark)
            await _nft(wakerules.release(plane.apiserver_port))
            return 0.0
        t0 = time.monotonic()
        t = cluster.plane_tenant(plane)
        await cluster.start_apiserver(t, cp.WAKE_APISERVER_ENV)
        procs = cluster.processes(t)
        port = plane.apiserver_port

        def gave_up() -> bool:
            if time.monotonic() - t0 < WAKE_TIMEOUT and procs.running("kube-apiserver"):
                return False
            log.warning("plane %s did not wake: see %s/logs/kube-apiserver.log", plane.id, plane.directory)
            return True
        while not await listens(port):
            if gave_up():
                return None
            await asyncio.sleep(0.02)
        self._listening[port].set()  # its own connections through, from now on
        # The rest once it listens (its own start is the CPU-heavy part), with the arguments
        # its claim wrote: their connections wait at the wake listener like any client's.
        for name in ("kube-controller-manager", "kube-scheduler", "virtual-node"):
            if name in (info.get("components") or []):
                await cluster.start_named(t, name)
        while not await apiserver_answers(port, t.pki / "ca.crt"):
            if gave_up():
                return None
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        await _nft(wakerules.release(plane.apiserver_port))
        await cluster.on_host(idle.mark_awake, plane.directory)
        if self.on_woken:
            task = asyncio.create_task(self._report(plane, info, took, why), context=self._context)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return took

    async def _report(self, plane: planes.Plane, info: dict, took: float, why: str) -> None:
        try:
            await self.on_woken(plane, info, took, why)
        except Exception:
            log.exception("plane %s woke; reporting it failed", plane.id)


async def _nft(script: str) -> None:
    rc, out = await nft.apply(script)
    if rc != 0:
        raise RuntimeError(f"the wake rule ({wakerules.table()}): {out}")


async def drop_rules() -> None:
    """`sk8s down`: no rule is left behind (the planes stop; the next start rebuilds it)."""
    await nft.apply(wakerules.drop())
