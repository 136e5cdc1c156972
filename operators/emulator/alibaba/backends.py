"""What runs an emulated container group: the narrow protocol the ECI API drives, and an
in-memory backend for tests.

A backend receives the group as the API received it, unflattened (`params.unflatten` of
CreateContainerGroup's parameters) with "ContainerGroupId" and "RegionId" added: the
containers are `group["Container"]` (each with "Name", "Image", "Command", "Arg",
"EnvironmentVar", ...), the init containers `group.get("InitContainer", [])`, the restart
policy `group.get("RestartPolicy", "Always")`. Restarts belong to the backend, as they do
to ECI: it reports restart counts and previous states; the API derives the group's status
from the container states it reports."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ...providers.sessions import StdioSession
from .canned_exec import CannedSession

Group = dict[str, Any]
EXIT_IMAGE = re.compile(r"^exit/(\d{1,3})$")


@dataclass
class ContainerState:
    state: str = "Waiting"  # Waiting | Running | Terminated
    reason: str = ""
    message: str = ""
    detail_status: str = ""
    exit_code: int | None = None
    signal: int | None = None
    start_time: float | None = None  # epoch seconds
    finish_time: float | None = None


@dataclass
class ContainerStatus:
    current: ContainerState = field(default_factory=ContainerState)
    previous: ContainerState | None = None
    ready: bool = False
    restart_count: int = 0


@dataclass(frozen=True)
class LogOptions:
    tail: int | None = None
    since_seconds: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False


class GroupBackend(Protocol):
    def admit(self, group: Group) -> None:
        """At CreateContainerGroup, before the group exists: refuse (errors.invalid, naming
        the parameter) what this backend cannot run."""

    def intranet_ip(self, group: Group) -> str | None:
        """The group's address as the backend knows it now: "" while it has none yet (a
        local sandbox has one once its pod exists), None when the backend assigns no
        addresses (the API then shows one of its own)."""

    async def start(self, group: Group) -> str | None:
        """Start the group's containers (init containers first); its IntranetIp, or None
        (see intranet_ip). An exception fails the group (ScheduleFailed)."""

    async def state(self, group: Group) -> dict[str, ContainerStatus]:
        """Container name (init containers too) -> its status; absent names are Waiting."""

    async def update(self, group: Group, containers: list[str], volumes: list[str]) -> None:
        """UpdateContainerGroup: `group` as it is now; `containers` have a new Image (each is
        restarted with it, its restart count +1), `volumes` new files (written in place)."""

    async def delete(self, group: Group) -> None:
        """Stop and remove everything of the group; a group never started is no error."""

    async def logs(self, group: Group, container: str, opts: LogOptions) -> str:
        """The container's output so far, shaped by opts."""

    async def exec(self, group: Group, container: str, command: list[str], *, stdin: bool,
                   tty: bool) -> StdioSession:
        """`command` (data, never a shell line) run in the group's running `container`, its
        stdio a session (ExecContainerCommand); ProviderError when it cannot be run."""


def shape_logs(lines: list[tuple[float, str]], opts: LogOptions, now: float) -> str:
    """(epoch, line) records -> the text DescribeContainerLog returns, as `kubectl logs`
    options cut it: since, then tail, then the byte limit (keeping whole leading bytes)."""
    if opts.since_seconds is not None:
        lines = [(t, s) for t, s in lines if t >= now - opts.since_seconds]
    if opts.tail is not None and opts.tail >= 0:
        lines = lines[len(lines) - opts.tail:] if opts.tail else []
    rendered = "".join((f"{_rfc3339(t)} " if opts.timestamps else "") + s + "\n" for t, s in lines)
    if opts.limit_bytes is not None and opts.limit_bytes >= 0:
        rendered = rendered.encode()[:opts.limit_bytes].decode(errors="ignore")
    return rendered


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e9):09d}Z"


@dataclass
class _Run:
    start_at: float
    statuses: dict[str, ContainerStatus] = field(default_factory=dict)
    logs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


class MemoryBackend:
    """Containers that only pretend to run, on a clock.

    A container whose image is "exit/<code>" runs `run_time` seconds and exits with that
    code; any other image runs until deleted. Containers start `start_delay` seconds after
    start() (init containers at once, each exiting with its image's code, 0 by default).
    Restarts follow the group's RestartPolicy, immediately. Each start logs one line."""

    def __init__(self, start_delay: float = 0.0, run_time: float = 0.0,
                 clock: Callable[[], float] = time.time):
        self.start_delay = start_delay
        self.run_time = run_time
        self.clock = clock
        self.runs: dict[str, _Run] = {}
        self.deleted: list[str] = []
        self.execs: list[CannedSession] = []  # every exec session, for tests to look at
        self.updates: list[tuple[str, list[str], list[str]]] = []  # (group id, containers, volumes)

    def admit(self, group: Group) -> None:
        pass  # any image runs: "exit/<code>" exits, anything else runs

    def intranet_ip(self, group: Group) -> str | None:
        return None

    async def start(self, group: Group) -> str | None:
        self.runs[group["ContainerGroupId"]] = _Run(start_at=self.clock() + self.start_delay)
        return None

    async def state(self, group: Group) -> dict[str, ContainerStatus]:
        run = self.runs.get(group["ContainerGroupId"])
        now = self.clock()
        if run is None or now < run.start_at:
            return {}
        policy = group.get("RestartPolicy") or "Always"
        for c in group.get("InitContainer", []):
            if c.get("Name") not in run.statuses:
                self._begin(run, c, run.start_at)
                self._finish(run, c, run.start_at, _exit_code(c.get("Image")) or 0)
        if any(s.current.exit_code for n, s in run.statuses.items() if n in _names(group, "InitContainer")):
            return run.statuses  # a failed init container: the main containers never start
        for c in group.get("Container", []):
            self._advance(run, c, policy, now)
        return run.statuses

    def _advance(self, run: _Run, c: dict, policy: str, now: float) -> None:
        name = c.get("Name")
        status = run.statuses.get(name)
        if status is None:
            self._begin(run, c, run.start_at)
            status = run.statuses[name]
        code = _exit_code(c.get("Image"))
        if status.current.state == "Running" and code is not None and now >= status.current.start_time + self.run_time:
            self._finish(run, c, status.current.start_time + self.run_time, code)
        if status.current.state == "Terminated" and _restarts(policy, status.current.exit_code):
            previous = status.current
            self._begin(run, c, now)
            run.statuses[name].previous = previous
            run.statuses[name].restart_count = status.restart_count + 1

    def _begin(self, run: _Run, c: dict, at: float) -> None:
        name = c.get("Name")
        old = run.statuses.get(name)
        run.statuses[name] = ContainerStatus(
            current=ContainerState(state="Running", detail_status="Started", start_time=at),
            ready=True, restart_count=old.restart_count if old else 0, previous=old.previous if old else None)
        run.logs.setdefault(name, []).append((at, f"{name}: started {c.get('Image')}"))

    def _finish(self, run: _Run, c: dict, at: float, code: int) -> None:
        status = run.statuses[c.get("Name")]
        status.current = ContainerState(
            state="Terminated", reason="Completed" if code == 0 else "Error",
            detail_status="Completed" if code == 0 else "Error", exit_code=code,
            start_time=status.current.start_time, finish_time=at)
        status.ready = False
        run.logs.setdefault(c.get("Name"), []).append((at, f"{c.get('Name')}: exited {code}"))

    async def update(self, group: Group, containers: list[str], volumes: list[str]) -> None:
        """Recorded; each container named is restarted at once, as a kubelet kills and starts
        one whose image changed (exit 137, restart count +1)."""
        gid = group["ContainerGroupId"]
        self.updates.append((gid, list(containers), list(volumes)))
        run = self.runs.get(gid)
        now = self.clock()
        for c in group.get("Container", []):
            status = run.statuses.get(c.get("Name")) if run else None
            if status is None or c.get("Name") not in containers:
                continue
            if status.current.state == "Running":
                self._finish(run, c, now, 137)
            previous = run.statuses[c["Name"]].current
            self._begin(run, c, now)
            run.statuses[c["Name"]].previous = previous
            run.statuses[c["Name"]].restart_count = status.restart_count + 1

    async def delete(self, group: Group) -> None:
        self.runs.pop(group["ContainerGroupId"], None)
        self.deleted.append(group["ContainerGroupId"])

    async def logs(self, group: Group, container: str, opts: LogOptions) -> str:
        run = self.runs.get(group["ContainerGroupId"])
        return shape_logs(run.logs.get(container, []) if run else [], opts, self.clock())

    async def exec(self, group: Group, container: str, command: list[str], *, stdin: bool,
                   tty: bool) -> StdioSession:
        session = CannedSession(command, stdin=stdin, tty=tty)  # see canned_exec
        self.execs.append(session)
        return session


def _exit_code(image: str | None) -> int | None:
    m = EXIT_IMAGE.match(image or "")
    return int(m.group(1)) if m else None


def _names(group: Group, kind: str) -> set[str]:
    return {c.get("Name") for c in group.get(kind, [])}


def _restarts(policy: str, exit_code: int | None) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)
