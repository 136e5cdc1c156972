"""One pod's kubelet loop on podman: init containers in order, then the containers, each
restarted per restartPolicy with the kubelet's back-off, and their probes.

Level-triggered: every step re-reads the container from podman, and a `died` event only
wakes the loop up, so an operator restart (`resume`) or a missed event converge the same
way. What podman does not keep (restart counts, the previous termination, the back-off)
is saved in a small file per sandbox.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ....models.podspec import Container, PodSpec, Probe
from ...errors import ImagePullError, ProviderError
from ...sandbox import ContainerInfo, SandboxRef
from ..spec import container_name, previous_container_name
from . import ephemeral
from .backoff import BackOff, crashloop_message
from .probes import LIVENESS, READINESS, STARTUP, ProbeState, timing
from .prober import PodNetwork, probe
from .progression import should_restart

if TYPE_CHECKING:
    from ..provider import LocalProvider

log = logging.getLogger(__name__)
ERROR_RETRY = 5.0
QUICK_EXIT_SECONDS = 2.0


def parse_time(ts: str | None) -> float | None:
    """podman's timestamps (RFC 3339 with nanoseconds) as epoch seconds."""
    if not ts or ts.startswith("0001-01-01"):
        return None
    head = ts[:19].replace(" ", "T")
    frac = ts[19:].split("Z")[0].split("+")[0].split(" ")[0]
    seconds = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    if frac.startswith(".") and frac[1:].isdigit():
        seconds += float("0" + frac[:10])
    return seconds


@dataclass
class ContainerRun:
    """The kubelet's memory of one container."""

    spec: Container
    init: bool
    restarts: int = 0
    backoff: BackOff = field(default_factory=BackOff)
    last_terminated: ContainerInfo | None = None
    waiting: tuple[str, str | None] | None = None  # why it is not running, when podman cannot say
    done: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    died_code: int | None = None     # from the last died event
    absent: bool = False             # known not to exist yet (a fresh pod): no need to look
    run_id: str | None = None          # StartedAt of the run the probes belong to
    started_mono: float = 0.0
    probes: dict[str, ProbeState] = field(default_factory=dict)
    probe_tasks: list[asyncio.Task] = field(default_factory=list)
    startup_passed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sidecar(self) -> bool:
        return self.init and self.spec.restartPolicy == "Always"

    def probe_spec(self, kind: str) -> Probe | None:
        return {LIVENESS: self.spec.livenessProbe, READINESS: self.spec.readinessProbe,
                STARTUP: self.spec.startupProbe}[kind]

    @property
    def started(self) -> bool:
        st = self.probes.get(STARTUP)
        return st is None or st.result is True

    @property
    def ready(self) -> bool:
        rd = self.probes.get(READINESS)
        return self.started and (rd is None or rd.result is True)


def _terminated_info(name: str, term: dict) -> ContainerInfo:
    return ContainerInfo(name=name, state="terminated", exit_code=term.get("exit_code"), reason=term.get("reason"),
                         message=term.get("message"), started_at=term.get("started_at"),
                         finished_at=term.get("finished_at"))


class PodWorker:
    def __init__(self, provider: "LocalProvider", ref: SandboxRef, spec: PodSpec, *, network: str,
                 labels: dict[str, str], dns: list[str], state_file: Path | None):
        self.p = provider
        self.ref = ref
        self.spec = spec
        self.network = network
        self.labels = labels
        self.dns = dns
        self.state_file = state_file
        self.init = [ContainerRun(c, True) for c in spec.initContainers or []]
        self.apps = [ContainerRun(c, False) for c in spec.containers]
        self.by_name = {c.name: c for c in self.init + self.apps}
        self.pod_created = False
        self.pod_ip: str | None = None
        self.netns: str | None = None
        self.task: asyncio.Task | None = None
        self.storage = ephemeral.limits(spec)
        self.storage_task: asyncio.Task | None = None
        self.evicted: str | None = None  # the eviction message: the pod has failed for good
        self._load()

    @property
    def pod_ident(self) -> str:
        """The kubelet's format.Pod: name_namespace(uid)."""
        return f"{self.ref.name}_{self.ref.namespace}({self.ref.uid})"

    # --- persistence ---------------------------------------------------------------
    def _load(self) -> None:
        if not self.state_file or not self.state_file.exists():
            return
        try:
            saved = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        self.evicted = saved.get("evicted")
        for name, s in saved.get("containers", {}).items():
            cs = self.by_name.get(name)
            if cs is None:
                continue
            cs.restarts = int(s.get("restarts", 0))
            cs.backoff = BackOff(s.get("delay"), s.get("last_restart"))
            if s.get("last_terminated"):
                cs.last_terminated = _terminated_info(name, s["last_terminated"])

    def _save(self) -> None:
        if not self.state_file:
            return
        out = {}
        for cs in self.by_name.values():
            lt = cs.last_terminated
            out[cs.name] = {"restarts": cs.restarts, "delay": cs.backoff.delay, "last_restart": cs.backoff.last_restart,
                            "last_terminated": lt and {"exit_code": lt.exit_code, "reason": lt.reason,
                                                       "message": lt.message, "started_at": lt.started_at,
                                                       "finished_at": lt.finished_at}}
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"containers": out, "evicted": self.evicted}))
            tmp.replace(self.state_file)
        except OSError as exc:
            log.warning("%s: saving kubelet state: %s", self.ref.instance_name, exc)

    def forget(self) -> None:
        if self.state_file:
            self.state_file.unlink(missing_ok=True)

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
            cs.probe_tasks = []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = None

    def on_died(self, container: str, exit_code: int | None = None) -> None:
        cs = self.by_name.get(container)
        if cs is not None:
            cs.died_code = exit_code
            cs.exited.set()

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
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for cs in self.init:
            if cs.sidecar:
                self._stop_probes(cs)
                cs.done, cs.waiting = True, None
                self._event("Normal", "Killing", f"Stopping container {cs.name}")
                await self.p.podman.run("stop", f"--time={self._grace()}", "--", container_name(self.ref, cs.name),
                                        check=False, timeout=self._grace() + 60)
        self._changed()

    def _grace(self, probe: Probe | None = None) -> int:
        if probe is not None and probe.terminationGracePeriodSeconds:
            return probe.terminationGracePeriodSeconds
        grace = self.spec.terminationGracePeriodSeconds
        return 30 if grace is None else grace

    async def _pod_ip(self) -> str | None:
        if self.pod_ip is None:  # a pod keeps its address for life
            self.pod_ip = await self.p.pod_ip(self.ref)
        return self.pod_ip

    async def _pod_network(self) -> PodNetwork:
        """Where httpGet/tcpSocket probes connect from: the pod's own network namespace,
        kept while it exists (the infra container holds it for the pod's life)."""
        if self.netns is None or not os.path.exists(self.netns):
            self.netns = await self.p.pod_netns(self.ref)
        return PodNetwork(await self._pod_ip(), self.netns)

    def _changed(self) -> None:
        self.p.sandbox_changed(self.ref)

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.p.record_event(self.ref, type_, reason, message)

    # --- one container ---------------------------------------------------------------
    async def _inspect(self, cs: ContainerRun) -> dict | None:
        res = await self.p.podman.run("container", "inspect", "--", container_name(self.ref, cs.name), check=False)
        if res.rc != 0:
            return None
        data = json.loads(res.out)
        return data[0] if isinstance(data, list) and data else None

    async def _create(self, cs: ContainerRun) -> None:
        await self.p.run_container(self.ref, self.spec, cs.spec, network=self.network, labels=self.labels,
                                   dns=self.dns, new_pod=not self.pod_created, init=cs.init)
        self.pod_created = True

    async def _supervise(self, cs: ContainerRun) -> int:
        """Keep one container going per restartPolicy; its final exit code once it is done."""
        pull_backoff = BackOff()
        while True:
            cs.exited.clear()
            data = None if cs.absent else await self._inspect(cs)
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
                self._watch_probes(cs, state)
                await cs.exited.wait()
                continue
            if status in ("created", "configured", "initialized"):
                await self._start(cs, pull_backoff)
                continue
            # exited or stopped: apply restartPolicy
            self._stop_probes(cs)
            code = int(state.get("ExitCode", 0))
            if not should_restart(self.spec.restartPolicy, code, init=cs.init, sidecar=cs.sidecar):
                cs.done, cs.waiting = True, None
                self._changed()
                return code
            finished = parse_time(state.get("FinishedAt")) or time.time()
            wait = cs.backoff.wait(finished, time.time())
            if wait > 0:
                cs.waiting = ("CrashLoopBackOff", crashloop_message(cs.backoff.delay or 0, cs.name, self.pod_ident))
                self._event("Warning", "BackOff",
                            f"Back-off restarting failed container {cs.name} in pod {self.pod_ident}")
                self._changed()
                await asyncio.sleep(wait)
            cs.last_terminated = _terminated_from(cs.name, state)
            cs.backoff.restarted(finished, time.time())
            cs.restarts += 1
            self._save()
            await self._recreate(cs, pull_backoff)

    async def _recreate(self, cs: ContainerRun, backoff: BackOff) -> None:
        """A restart is a new container from the image, as the kubelet's (nothing written by
        the last run survives, outside volumes); the last run is kept for `kubectl logs --previous`."""
        current, previous = container_name(self.ref, cs.name), previous_container_name(self.ref, cs.name)
        await self.p.podman.run("rm", "--force", "--time=0", "--", previous, check=False)
        renamed = await self.p.podman.run("rename", "--", current, previous, check=False)
        if renamed.rc != 0 and "no such container" not in renamed.err:
            await self._start(cs, backoff)  # cannot make room for a new one: run the old one again
            return
        try:
            await self._create(cs)
        except ProviderError as err:
            await self._creation_failed(cs, err, backoff)  # the loop creates it once it can
            return
        cs.waiting = None
        self._changed()

    async def _succeeded_at_once(self, cs: ContainerRun) -> bool:
        """An init container that just started and exits 0 within moments (most do): its
        died event says so, and the next one can start without a round of `podman inspect`.
        Anything else goes the level-triggered way."""
        if cs.sidecar or not cs.init:
            return False
        try:
            await asyncio.wait_for(cs.exited.wait(), QUICK_EXIT_SECONDS)
        except asyncio.TimeoutError:
            return False
        if cs.died_code != 0:
            return False
        cs.done = True
        self._changed()
        return True

    async def _start(self, cs: ContainerRun, backoff: BackOff) -> None:
        res = await self.p.podman.run("start", "--", container_name(self.ref, cs.name), check=False)
        if res.rc == 0:
            cs.waiting = None
            self._changed()
            return
        await self._creation_failed(cs, ProviderError(res.err.strip() or "podman start failed",
                                                      reason="RunContainerError"), backoff)

    async def _creation_failed(self, cs: ContainerRun, err: ProviderError, backoff: BackOff) -> None:
        now = time.time()
        wait = backoff.wait(now, now + 0.001)
        if isinstance(err, ImagePullError) and err.reason == "ErrImagePull" and backoff.delay:
            cs.waiting = ("ImagePullBackOff", f'Back-off pulling image "{cs.spec.image}"')
        else:
            cs.waiting = (err.reason, str(err))
        self._event("Warning", "Failed", f"Error: {err}")
        self._changed()
        await asyncio.sleep(max(wait, 1.0))
        backoff.restarted(now, time.time())

    # --- local ephemeral storage (ephemeral.py) ---------------------------------------
    async def _watch_storage(self) -> None:
        while True:
            await asyncio.sleep(ephemeral.PERIOD)
            try:
                containers, volumes = await self._storage_usage()
            except Exception as exc:  # noqa: BLE001 - a failed measurement is retried next period
                log.warning("%s: measuring ephemeral storage: %s", self.ref.instance_name, exc)
                continue
            message = ephemeral.decide(self.storage, containers, volumes)
            if message:
                await self._evict(message)
                return

    async def _storage_usage(self) -> tuple[dict[str, int], dict[str, int]]:
        """Each container's writable layer and log, and the pod's local volumes, in bytes."""
        containers = {}
        for cs in self.by_name.values():
            data = await self._inspect(cs)
            if data is None:
                continue
            upper = ((data.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
            paths = [p for p in (upper, data.get("LogPath") or "") if p]
            containers[cs.name] = sum(await asyncio.gather(*(asyncio.to_thread(ephemeral.disk_usage, p)
                                                             for p in paths)))
        from ..volumes import volume_dir  # local: the kubelet package does not depend on volumes otherwise
        volumes = {name: await asyncio.to_thread(ephemeral.disk_usage,
                                                 str(volume_dir(self.p.volume_root, self.ref, name)))
                   for name in ephemeral.local_volumes(self.spec)}
        return containers, volumes

    async def _evict(self, message: str) -> None:
        """As the kubelet's evictPod with grace period 0: every container killed, none
        restarted, the pod Failed with reason Evicted."""
        self.evicted = message
        self._save()
        log.info("%s: evicted: %s", self.ref.instance_name, message)
        self._event("Warning", ephemeral.REASON, message)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        for cs in self.by_name.values():
            self._stop_probes(cs)
            cs.done, cs.waiting = True, None
        await asyncio.gather(*(self.p.podman.run("stop", "--time=0", container_name(self.ref, cs.name), check=False)
                               for cs in self.by_name.values()))
        self._changed()

    # --- probes ----------------------------------------------------------------------
    def _watch_probes(self, cs: ContainerRun, state: dict) -> None:
        """Probes belong to one run of a container: a new run starts them afresh."""
        run_id = state.get("StartedAt")
        if (cs.init and not cs.sidecar) or run_id == cs.run_id:
            return
        self._stop_probes(cs)
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
        cs.probe_tasks = [asyncio.create_task(self._probe_loop(cs, kind, cs.probe_spec(kind)))
                          for kind in cs.probes]
        self._changed()

    def _stop_probes(self, cs: ContainerRun) -> None:
        for t in cs.probe_tasks:
            t.cancel()
        cs.probe_tasks = []
        cs.run_id = None

    async def _probe_loop(self, cs: ContainerRun, kind: str, spec: Probe) -> None:
        st = cs.probes[kind]
        if kind != STARTUP:
            await cs.startup_passed.wait()  # startup probes hold the others off

        async def exec_fn(command: list[str], timeout: float) -> tuple[int, str]:
            return await self.p.exec_command(self.ref, cs.name, command, timeout)

        while True:
            running_for = time.monotonic() - cs.started_mono
            if running_for < st.timing.initial_delay:
                await asyncio.sleep(st.timing.initial_delay - running_for)
                continue
            if not st.on_hold:
                try:
                    pod = PodNetwork(None, None) if spec.exec is not None else await self._pod_network()
                    ok, message = await probe(spec, cs.spec, pod, exec_fn)
                except ProviderError as exc:
                    ok, message = False, str(exc)
                if not ok:
                    self._event("Warning", "Unhealthy", f"{kind} probe failed: {message}")
                if st.record(ok):
                    await self._probe_changed(cs, kind, st.result)
                if kind == STARTUP and st.result:
                    return  # a started container is not probed for startup again
            await asyncio.sleep(st.timing.period)

    async def _probe_changed(self, cs: ContainerRun, kind: str, result: bool | None) -> None:
        if kind == STARTUP and result:
            cs.startup_passed.set()
        self._changed()
        if result is False and kind in (LIVENESS, STARTUP):
            self._event("Normal", "Killing", f"Container {cs.name} failed {kind.lower()} probe, will be restarted")
            grace = self._grace(cs.probe_spec(kind))
            await self.p.podman.run("stop", f"--time={grace}", "--", container_name(self.ref, cs.name),
                                    check=False, timeout=grace + 60)

    # --- what inspect reports ----------------------------------------------------------
    def report(self, raw: dict[str, ContainerInfo]) -> tuple[list[ContainerInfo], list[ContainerInfo]]:
        """The podman view of each container, completed with what only the kubelet knows."""
        init = [self._info(cs, raw.get(cs.name), i) for i, cs in enumerate(self.init)]
        return init, [self._info(cs, raw.get(cs.name), -1) for cs in self.apps]

    def _info(self, cs: ContainerRun, raw: ContainerInfo | None, init_index: int) -> ContainerInfo:
        if raw is None:
            # As the kubelet: a pod with init containers shows PodInitializing until each is created.
            reason, message = cs.waiting or (("PodInitializing" if self.init else "ContainerCreating"), None)
            return ContainerInfo(name=cs.name, state="waiting", reason=reason, message=message,
                                 restart_count=cs.restarts, image=cs.spec.image, ready=False, started=False,
                                 last_state=cs.last_terminated)
        info = ContainerInfo(**{**raw.__dict__})
        info.restart_count = cs.restarts
        info.last_state = cs.last_terminated
        if info.state != "running" and cs.waiting is not None:
            if info.state == "terminated":
                info.last_state = ContainerInfo(**{**raw.__dict__})  # the run that is backing off
            info.state, info.reason, info.message = "waiting", cs.waiting[0], cs.waiting[1]
            info.exit_code = info.started_at = info.finished_at = None
        running = info.state == "running"
        info.started = running and cs.started
        if cs.init and not cs.sidecar:
            info.ready = info.state == "terminated" and info.exit_code == 0
        else:
            info.ready = running and cs.ready
        return info


def _terminated_from(name: str, state: dict) -> ContainerInfo:
    code = int(state.get("ExitCode", 0))
    reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
    return ContainerInfo(name=name, state="terminated", exit_code=code, reason=reason,
                         message=state.get("Error") or None, started_at=_rfc3339(state.get("StartedAt")),
                         finished_at=_rfc3339(state.get("FinishedAt")))


def _rfc3339(ts: str | None) -> str | None:
    t = parse_time(ts)
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None
