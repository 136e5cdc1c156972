"""The probes of one pod's containers, as the kubelet's prober workers run them: one loop
per probe of a container's run (a new run starts them afresh), startup probes holding the
others off, liveness and startup failures stopping the container so that its restart
policy applies. Exec probes run through the runtime, network probes from the pod's own
network namespace (prober.py)."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Awaitable, Callable

from ....models.podspec import PodSpec, Probe
from ...errors import ProviderError
from ...sandbox import SandboxRef
from .probes import LIVENESS, READINESS, STARTUP, ProbeState, timing
from .prober import PodNetwork, probe
from .runs import ContainerRun, grace_period, parse_time
from .runtime import ContainerRuntime


class ProbeLoops:
    def __init__(self, runtime: ContainerRuntime, ref: SandboxRef, spec: PodSpec, *,
                 event: Callable[[str, str, str], None], changed: Callable[[], None],
                 kill: Callable[[ContainerRun, int, str], Awaitable[None]] | None = None):
        self.runtime = runtime
        self.ref = ref
        self.spec = spec
        self._event = event
        self._changed = changed
        self._kill = kill  # the kubelet's killContainer (preStop hook first); else a plain stop
        self.pod_ip: str | None = None
        self.netns: str | None = None

    def watch(self, cs: ContainerRun, state: dict) -> None:
        """Probes belong to one run of a container: a new run starts them afresh."""
        run_id = state.get("StartedAt")
        if (cs.init and not cs.sidecar) or run_id == cs.run_id:
            return
        self.stop(cs)
        cs.run_id = run_id
        started = parse_time(run_id)
        cs.started_mono = time.monotonic() - max(0.0, time.time() - started) if started else time.monotonic()
        cs.startup_passed.clear()
        cs.probes = {}
        for kind in (STARTUP, LIVENESS, READINESS):
            p = cs.probe_spec(kind)
            if p is not None:
                cs.probes[kind] = ProbeState(kind, timing(p, kind))
        if STARTUP not in cs.probes:
            cs.startup_passed.set()
        cs.probe_tasks = [asyncio.create_task(self._loop(cs, kind, cs.probe_spec(kind), run_id))
                          for kind in cs.probes]
        self._changed()

    @staticmethod
    def stop(cs: ContainerRun) -> None:
        for t in cs.probe_tasks:
            t.cancel()
        cs.probe_tasks = []
        cs.run_id = None

    async def pod_network(self) -> PodNetwork:
        """Where httpGet/tcpSocket probes connect from: the pod's own network namespace,
        kept while it exists (the infra container holds it for the pod's life)."""
        if self.netns is None or not os.path.exists(self.netns):
            self.netns = await self.runtime.pod_netns(self.ref)
        if self.pod_ip is None:  # a pod keeps its address for life
            self.pod_ip = await self.runtime.pod_ip(self.ref)
        return PodNetwork(self.pod_ip, self.netns)

    async def _loop(self, cs: ContainerRun, kind: str, spec: Probe, run_id: str | None) -> None:
        st = cs.probes[kind]
        if kind != STARTUP:
            await cs.startup_passed.wait()  # startup probes hold the others off

        async def exec_fn(command: list[str], timeout: float) -> tuple[int, str]:
            return await self.runtime.exec_command(self.ref, cs.name, command, timeout)

        # Not only cancellation ends a loop: Python 3.11's wait_for returns a result that is
        # ready when the cancellation arrives and drops the cancellation (gh-86296), so a
        # loop of a run that was stopped also ends on its own at its next round.
        while cs.run_id == run_id:
            running_for = time.monotonic() - cs.started_mono
            if running_for < st.timing.initial_delay:
                await asyncio.sleep(st.timing.initial_delay - running_for)
                continue
            if not st.on_hold:
                try:
                    pod = PodNetwork(None, None) if spec.exec is not None else await self.pod_network()
                    ok, message = await probe(spec, cs.spec, pod, exec_fn)
                except ProviderError as exc:
                    ok, message = False, str(exc)
                if not ok:
                    self._event("Warning", "Unhealthy", f"{kind} probe failed: {message}")
                if st.record(ok):
                    await self._result_changed(cs, kind, st.result)
                if kind == STARTUP and st.result:
                    return  # a started container is not probed for startup again
            await asyncio.sleep(st.timing.period)

    async def _result_changed(self, cs: ContainerRun, kind: str, result: bool | None) -> None:
        if kind == STARTUP and result:
            cs.startup_passed.set()
        self._changed()
        if result is False and kind in (LIVENESS, STARTUP):
            message = f"Container {cs.name} failed {kind.lower()} probe, will be restarted"
            grace = grace_period(self.spec, cs.probe_spec(kind))
            if self._kill is not None:
                await self._kill(cs, grace, message)
                return
            self._event("Normal", "Killing", message)
            await self.runtime.stop_container(self.ref, cs.name, grace)
