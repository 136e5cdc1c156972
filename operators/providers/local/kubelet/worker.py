"""One pod's kubelet loop: init containers in order, then the containers, each restarted
per restartPolicy with the kubelet's back-off, and their probes (probeloop.py).

Level-triggered: every step re-reads the container from the runtime, and a `died` event
only wakes the loop up, so an operator restart (`resume`) or a missed event converge the
same way. What the runtime does not keep (restart counts, the previous termination, the
back-off) is saved in a small file per sandbox (statefile.py).

The worker knows the runtime only through the narrow `ContainerRuntime` protocol
(runtime.py); events go to the sink it is given, and `changed` tells its owner that what
`report` says has changed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from ....models.contracts import REASON_ERR_IMAGE_PULL, REASON_IMAGE_PULL_BACKOFF
from ....models.podspec import Container, PodSpec
from ...errors import ImagePullError, ProviderError
from ...sandbox import ContainerInfo, EventSink, SandboxRef
from . import ephemeral, hooks, statefile
from .backoff import BackOff, crashloop_message
from .probeloop import ProbeLoops
from .prober import PodNetwork
from .progression import should_restart
from .report import report
from .runs import ContainerRun, finished_second, grace_period, image_changed, parse_time, terminated_from
from .runtime import ContainerRuntime
from .tasks import cancel_all

log = logging.getLogger(__name__)
ERROR_RETRY = 5.0
QUICK_EXIT_SECONDS = 2.0


class PodWorker:
    def __init__(self, runtime: ContainerRuntime, ref: SandboxRef, spec: PodSpec, *, network: str,
                 labels: dict[str, str], dns: list[str], state_file: Path | None,
                 events: EventSink | None = None, changed: Callable[[SandboxRef], None] | None = None):
        self.runtime = runtime
        self.ref = ref
        self.spec = spec
        self.network = network
        self.labels = labels
        self.dns = dns
        self.state_file = state_file
        self.events = events
        self.on_change = changed
        self.init = [ContainerRun(c, True) for c in spec.initContainers or []]
        self.apps = [ContainerRun(c, False) for c in spec.containers]
        self.by_name = {c.name: c for c in self.init + self.apps}
        self.probes = ProbeLoops(runtime, ref, spec, event=self._event, changed=self._changed, kill=self._kill)
        self.pod_created = False
        self.task: asyncio.Task | None = None
        self.storage = ephemeral.limits(spec)
        self.storage_task: asyncio.Task | None = None
        self.evicted: str | None = statefile.load(state_file, self.by_name)  # the pod has failed for good

    @property
    def pod_ident(self) -> str:
        """The kubelet's format.Pod: name_namespace(uid)."""
        return f"{self.ref.name}_{self.ref.namespace}({self.ref.uid})"

    def _save(self) -> None:
        statefile.save(self.state_file, self.by_name, self.evicted)

    def forget(self) -> None:
        if self.state_file:
            self.state_file.unlink(missing_ok=True)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.ref)

    def _event(self, type_: str, reason: str, message: str, cs: ContainerRun | None = None) -> None:
        if self.events is None:
            return
        if cs is None:
            self.events(self.ref, type_, reason, message)
        else:  # a container's event, as the kubelet's: its field path tells containers apart
            kind = "initContainers" if cs.init else "containers"
            self.events(self.ref, type_, reason, message, field_path=f"spec.{kind}{{{cs.name}}}")

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Create the first containers now (so that a bad image fails `ensure` at once), then
        run the loop in the background. Idempotent."""
        if self.task is not None or self.evicted:
            return
        first = self.init[:1] or self.apps
        for cs in first:
            await self._create(cs)
        created = {cs.name for cs in first}
        for cs in self.by_name.values():
            cs.absent = cs.name not in created
        self.resume()

    def resume(self) -> None:
        if self.evicted:
            return  # an evicted pod stays failed, across operator restarts too
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"kubelet {self.ref.instance_name}")
        if self.storage and self.storage_task is None:
            self.storage_task = asyncio.create_task(self._watch_storage(),
                                                    name=f"storage {self.ref.instance_name}")

    async def stop(self) -> None:
        tasks = [t for t in (self.task, self.storage_task) if t]
        self.storage_task = None
        for cs in self.by_name.values():
            tasks += cs.probe_tasks
            self.probes.stop(cs)
        await cancel_all(tasks, self.ref.instance_name)
        self.task = None

    def on_died(self, container: str, exit_code: int | None = None) -> None:
        cs = self.by_name.get(container)
        if cs is not None:
            cs.died_code = exit_code
            # Its termination is reported once its message has been read (`_read_message`),
            # as the kubelet reports both at once; not when nothing will read it any more.
            cs.reading = self.task is not None and not cs.done and not self.evicted
            cs.exited.set()

    def report(self, raw: dict[str, ContainerInfo]) -> tuple[list[ContainerInfo], list[ContainerInfo]]:
        """The runtime's view of each container, completed with what only the kubelet knows."""
        return report(self.init, self.apps, raw)

    async def _run(self) -> None:
        while True:
            try:
                await self._lifecycle()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # level-triggered: going round again is safe
                log.exception("%s: kubelet loop failed; retrying", self.ref.instance_name)
                await asyncio.sleep(ERROR_RETRY)

    async def _lifecycle(self) -> None:
        sidecars: list[asyncio.Task] = []
        try:
            for cs in self.init:
                if cs.sidecar:  # started in turn, then kept running next to the containers
                    sidecars.append(asyncio.create_task(self._supervise(cs)))
                    await cs.startup_passed.wait()
                elif await self._supervise(cs) != 0:
                    break  # restartPolicy Never: the pod has failed
            else:
                self._changed()
                await asyncio.gather(*(self._supervise(cs) for cs in self.apps))
        except BaseException:
            for t in sidecars:  # deleted: the sandbox's removal stops the containers
                t.cancel()
            raise
        await self._stop_sidecars(sidecars)

    async def _stop_sidecars(self, tasks: list[asyncio.Task]) -> None:
        """The containers are done (or the pod failed): sidecars stop too, as upstream."""
        if not tasks:
            return
        await cancel_all(tasks, self.ref.instance_name)
        for cs in self.init:
            if cs.sidecar:
                self.probes.stop(cs)
                cs.done, cs.waiting = True, None
                await self._kill(cs, grace_period(self.spec))  # its preStop hook first
        self._changed()

    # --- one container ---------------------------------------------------------------
    async def _create(self, cs: ContainerRun) -> None:
        """The image per its pull policy, then the container created and started (`podman run`),
        with the kubelet's Pulling/Pulled, Created and Started events."""
        await self.runtime.pull_image(cs.spec, lambda type_, reason, msg: self._event(type_, reason, msg, cs))
        await self.runtime.create_container(self.ref, self.spec, cs.spec, network=self.network, labels=self.labels,
                                            dns=self.dns, new_pod=not self.pod_created, init=cs.init, pulled=True)
        self.pod_created = True
        self._event("Normal", "Created", "Container created", cs)
        self._event("Normal", "Started", "Container started", cs)

    async def add_ephemeral(self, c: Container) -> None:
        """A `kubectl debug` container, run once next to the others: never restarted, no
        probes or hooks, so the loop does not supervise it. Idempotent."""
        if await self.runtime.inspect_container(self.ref, c.name) is not None:
            return

        def event(type_: str, reason: str, message: str) -> None:
            if self.events is not None:
                self.events(self.ref, type_, reason, message, field_path=f"spec.ephemeralContainers{{{c.name}}}")
        await self.runtime.pull_image(c, event)
        await self.runtime.create_container(self.ref, self.spec, c, network=self.network, labels=self.labels,
                                            dns=self.dns, new_pod=False, init=False, pulled=True, ephemeral=True)
        event("Normal", "Created", "Container created")
        event("Normal", "Started", "Container started")
        self._changed()

    async def change_images(self, spec: PodSpec) -> list[str]:
        """The images as `spec` names them now: a running container whose label names another
        is killed and made anew from its new image (the kubelet's "definition changed"), one
        not running takes it at its next start. Level-triggered, so resume finishes a change."""
        self.spec = spec
        wanted = {c.name: c for c in (spec.initContainers or []) + spec.containers}
        replaced = []
        for cs in [cs for cs in self.by_name.values() if cs.name in wanted]:
            cs.spec = wanted[cs.name]
            if not (cs.done or cs.absent or cs.replacing) and image_changed(
                    await self.runtime.inspect_container(self.ref, cs.name), cs.spec.image):
                # Waiting, not terminated, until the new run: under restartPolicy Never the
                # apiserver refuses a container status that goes from terminated to running.
                cs.replacing, cs.waiting = True, ("ContainerCreating", None)
                replaced.append(cs.name)
                await self._kill(cs, grace_period(spec), f"Container {cs.name} definition changed, will be restarted")
        return replaced

    async def _supervise(self, cs: ContainerRun) -> int:
        """Keep one container going per restartPolicy; its final exit code once it is done."""
        pull_backoff = BackOff()
        while True:
            cs.exited.clear()
            data = None if cs.absent else await self.runtime.inspect_container(self.ref, cs.name)
            cs.absent = False
            if data is None:
                try:
                    await self._create(cs)
                    cs.waiting = None
                except ProviderError as err:
                    await self._creation_failed(cs, err, pull_backoff)
                    continue
                if await self._succeeded_at_once(cs):
                    return 0
                continue
            self.pod_created = True
            state = data.get("State") or {}
            status = state.get("Status")
            if status in ("running", "paused", "stopping"):
                if not await self._post_start(cs, state):
                    continue  # failed: killed, its exit applies restartPolicy
                self.probes.watch(cs, state)
                await cs.exited.wait()
                continue
            if status in ("created", "configured", "initialized"):
                await self._start(cs, pull_backoff)
                continue
            # exited or stopped: apply restartPolicy
            self.probes.stop(cs)
            await self._read_message(cs, data)
            code = int(state.get("ExitCode", 0))
            # killed for a new image: restarted whatever the policy says, at once (the kubelet's)
            if not cs.replacing and not should_restart(self.spec.restartPolicy, code, init=cs.init, sidecar=cs.sidecar):
                cs.done, cs.waiting = True, None
                self._changed()
                return code
            await self._restart(cs, state, pull_backoff)

    async def _restart(self, cs: ContainerRun, state: dict, pull_backoff: BackOff) -> None:
        """After the back-off (CrashLoopBackOff meanwhile), the container's next run."""
        finished = parse_time(state.get("FinishedAt")) or time.time()
        wait = 0 if cs.replacing else cs.backoff.wait(finished, time.time())
        cs.replacing = False
        if wait > 0:
            cs.waiting = ("CrashLoopBackOff", crashloop_message(cs.backoff.delay or 0, cs.name, self.pod_ident))
            self._event("Warning", "BackOff",
                        f"Back-off restarting failed container {cs.name} in pod {self.pod_ident}")
            self._changed()
            await asyncio.sleep(wait)
        cs.last_terminated = terminated_from(cs.name, state, cs.message)
        cs.backoff.restarted(finished, time.time())
        cs.restarts += 1
        self._save()
        await self._recreate(cs, pull_backoff)

    async def _recreate(self, cs: ContainerRun, backoff: BackOff) -> None:
        """A restart is a new container from the image, as the kubelet's (nothing written by
        the last run survives, outside volumes); the last run is kept for `kubectl logs --previous`."""
        if not await self.runtime.retire_container(self.ref, cs.name):
            await self._start(cs, backoff)  # cannot make room for a new one: run the old one again
            return
        try:
            await self._create(cs)
        except ProviderError as err:
            await self._creation_failed(cs, err, backoff)  # the loop creates it once it can
            return
        cs.waiting, cs.message = None, None
        self._changed()

    async def _succeeded_at_once(self, cs: ContainerRun) -> bool:
        """An init container that just started and exits 0 within moments (most do): its
        died event says so, and the next one can start without a round of inspection.
        Anything else goes the level-triggered way."""
        if cs.sidecar or not cs.init or self._hook(cs, "postStart") is not None:
            return False
        try:
            await asyncio.wait_for(cs.exited.wait(), QUICK_EXIT_SECONDS)
        except asyncio.TimeoutError:
            return False
        if cs.died_code != 0:
            return False
        await self._read_message(cs, await self.runtime.inspect_container(self.ref, cs.name))
        cs.done = True
        self._changed()
        return True

    async def _start(self, cs: ContainerRun, backoff: BackOff) -> None:
        # Marked before the start: a report between the start and the hook's first step
        # must not show the container running (_post_start clears it).
        cs.post_starting = self._hook(cs, "postStart") is not None
        try:
            await self.runtime.start_container(self.ref, cs.name)
        except ProviderError as err:
            cs.post_starting = False
            await self._creation_failed(cs, err, backoff)
            return
        self._event("Normal", "Started", "Container started", cs)
        cs.waiting, cs.message = None, None
        self._changed()

    async def _creation_failed(self, cs: ContainerRun, err: ProviderError, backoff: BackOff) -> None:
        now = time.time()
        wait = backoff.wait(now, now + 0.001)
        if isinstance(err, ImagePullError) and err.reason == REASON_ERR_IMAGE_PULL and backoff.delay:
            cs.waiting = (REASON_IMAGE_PULL_BACKOFF, f'Back-off pulling image "{cs.spec.image}"')
        else:
            cs.waiting = (err.reason, str(err))
        self._event("Warning", "Failed", f"Error: {err}")
        self._changed()
        await asyncio.sleep(max(wait, 1.0))
        backoff.restarted(now, time.time())

    async def _read_message(self, cs: ContainerRun, data: dict | None) -> None:
        """The exited container's termination message, read before its next run empties the file."""
        if cs.message is None and data is not None:
            cs.message = await self.runtime.termination_message(self.ref, cs.spec, data) or ""
            cs.read_finished = finished_second((data.get("State") or {}).get("FinishedAt"))
        if cs.reading:
            cs.reading = False
            self._changed()

    # --- lifecycle hooks (hooks.py) ------------------------------------------------------
    @staticmethod
    def _hook(cs: ContainerRun, kind: str):
        lc = cs.spec.lifecycle
        return getattr(lc, kind) if lc is not None else None

    async def _run_hook(self, cs: ContainerRun, handler) -> str | None:
        async def exec_fn(command: list[str], timeout: float) -> tuple[int, str]:
            return await self.runtime.exec_command(self.ref, cs.name, command, timeout)

        async def network() -> PodNetwork:
            return await self.probes.pod_network()
        try:
            return await hooks.run(handler, cs.spec, self.pod_ident, exec_fn=exec_fn, network=network)
        except ProviderError as exc:
            return f"Cannot run handler: {exc}"

    async def _post_start(self, cs: ContainerRun, state: dict) -> bool:
        """Once per run, before the container counts as started (and before its probes):
        its postStart hook. A failure kills the container (FailedPostStartHook); False then."""
        handler = self._hook(cs, "postStart")
        run_id = state.get("StartedAt")
        if handler is None or cs.hooked_run == run_id:
            cs.post_starting = False
            return True
        cs.hooked_run, cs.post_starting = run_id, True
        self._save()
        self._changed()
        try:
            failure = await self._run_hook(cs, handler)
        finally:
            cs.post_starting = False
        if failure is None:
            return True
        self._event("Warning", "FailedPostStartHook", failure)
        await self._kill(cs, grace_period(self.spec), "FailedPostStartHook")
        self._changed()
        return False

    async def _pre_stop(self, cs: ContainerRun, grace: int) -> int:
        """The container's preStop hook within `grace` seconds; the seconds left for SIGTERM,
        at least the kubelet's minimal shutdown window of 2 s."""
        handler = self._hook(cs, "preStop")
        if handler is None or grace <= 0:
            return grace
        start = time.monotonic()
        try:
            failure = await asyncio.wait_for(self._run_hook(cs, handler), grace)
        except asyncio.TimeoutError:  # upstream only logs it: the grace period is spent
            failure = None
            log.info("%s: preStop hook of %s not completed in %ss", self.ref.instance_name, cs.name, grace)
        if failure is not None:
            self._event("Warning", "FailedPreStopHook", failure)
        return max(grace - int(time.monotonic() - start), 2)

    async def _kill(self, cs: ContainerRun, grace: int, message: str | None = None) -> None:
        """As the kubelet's killContainer: the preStop hook, then SIGTERM, SIGKILL after what
        is left of the grace period."""
        self._event("Normal", "Killing", message or f"Stopping container {cs.name}", cs)
        left = await self._pre_stop(cs, grace)
        await self.runtime.stop_container(self.ref, cs.name, left)

    async def terminate(self, grace: int) -> None:
        """Deletion, after `stop`: every running container's preStop hook and stop, all at
        once (each within the grace period), before the sandbox is removed."""
        for cs in self.by_name.values():
            if not cs.done and not cs.absent:  # may be running: the kubelet's Killing, as for any kill
                self._event("Normal", "Killing", f"Stopping container {cs.name}", cs)
        async def one(cs: ContainerRun) -> None:
            data = await self.runtime.inspect_container(self.ref, cs.name)
            if ((data or {}).get("State") or {}).get("Status") == "running":
                left = await self._pre_stop(cs, grace)
                await self.runtime.stop_container(self.ref, cs.name, left)
        with_hooks = [cs for cs in self.by_name.values() if self._hook(cs, "preStop") is not None]
        if grace > 0 and with_hooks:
            await asyncio.gather(*(one(cs) for cs in self.by_name.values()), return_exceptions=True)

    # --- local ephemeral storage (ephemeral.py) ---------------------------------------
    async def _watch_storage(self) -> None:
        while True:
            await asyncio.sleep(ephemeral.PERIOD)
            try:
                containers, volumes = await ephemeral.usage(self.runtime, self.ref, list(self.by_name),
                                                            self.spec)
            except Exception as exc:  # noqa: BLE001 - a failed measurement is retried next period
                log.warning("%s: measuring ephemeral storage: %s", self.ref.instance_name, exc)
                continue
            message = ephemeral.decide(self.storage, containers, volumes)
            if message:
                await self._evict(message)
                return

    async def _evict(self, message: str) -> None:
        """As the kubelet's evictPod with grace period 0: every container killed, none
        restarted, the pod Failed with reason Evicted."""
        self.evicted = message
        self._save()
        log.info("%s: evicted: %s", self.ref.instance_name, message)
        self._event("Warning", ephemeral.REASON, message)
        if self.task is not None:
            await cancel_all([self.task], self.ref.instance_name)
            self.task = None
        for cs in self.by_name.values():
            self.probes.stop(cs)
            cs.done, cs.waiting = True, None
        await asyncio.gather(*(self.runtime.stop_container(self.ref, cs.name, 0) for cs in self.by_name.values()))
        self._changed()
