"""The kubelet's memory of one container (`ContainerRun`) and the terminations it keeps:
restart count, back-off, the previous run's end, probe state. Pure data and conversions."""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from ....models.contracts import LABEL_CONTAINER_IMAGE
from ....models.podspec import Container, PodSpec, Probe
from ...sandbox import ContainerInfo
from .backoff import BackOff
from .probes import LIVENESS, READINESS, STARTUP, ProbeState


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


def finished_second(ts: str | None) -> int | None:
    """An exit's time to the second, whichever way it is written (podman's, or RFC 3339)."""
    t = parse_time(ts)
    return int(t) if t is not None else None


def rfc3339(ts: str | None) -> str | None:
    t = parse_time(ts)
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def image_changed(inspection: dict | None, image: str) -> bool:
    """A running container made from another image than `image`, by the label its spec gave
    it (a container of an earlier version, without one, is taken to be right)."""
    data = inspection or {}
    label = ((data.get("Config") or {}).get("Labels") or {}).get(LABEL_CONTAINER_IMAGE)
    return (data.get("State") or {}).get("Status") == "running" and label is not None and label != image


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
    hooked_run: str | None = None      # StartedAt of the run whose postStart hook has run
    post_starting: bool = False        # its postStart hook is running: not started yet
    message: str | None = None         # the termination message of its last exit (termlog.py)
    reading: bool = False              # it died and its message is being read: not reported yet
    read_finished: int | None = None   # finishing second of the exit whose message was read
    replacing: bool = False            # killed for a new image: restarted whatever restartPolicy says

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


def terminated_info(name: str, term: dict) -> ContainerInfo:
    """A termination as the state file keeps it."""
    return ContainerInfo(name=name, state="terminated", exit_code=term.get("exit_code"), reason=term.get("reason"),
                         message=term.get("message"), started_at=term.get("started_at"),
                         finished_at=term.get("finished_at"))


def with_message(runtime_message: str | None, message: str | None) -> str | None:
    """As the kubelet: the runtime's own message, then ": " and the container's."""
    if not message:
        return runtime_message or None
    return f"{runtime_message}: {message}" if runtime_message else message


def terminated_from(name: str, state: dict, message: str | None = None) -> ContainerInfo:
    """A termination from podman's State of the container; `message`: the container's own."""
    code = int(state.get("ExitCode", 0))
    reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
    return ContainerInfo(name=name, state="terminated", exit_code=code, reason=reason,
                         message=with_message(state.get("Error") or None, message), started_at=rfc3339(state.get("StartedAt")),
                         finished_at=rfc3339(state.get("FinishedAt")))


def grace_period(spec: PodSpec, probe: Probe | None = None) -> int:
    """Seconds between SIGTERM and SIGKILL: the probe's own, else the pod's (30 by default)."""
    if probe is not None and probe.terminationGracePeriodSeconds:
        return probe.terminationGracePeriodSeconds
    grace = spec.terminationGracePeriodSeconds
    return 30 if grace is None else grace
