"""What `inspect` reports about a pod's containers: podman's view of each, completed with
what only the kubelet knows (restart counts, back-off, the previous run, probe results,
containers still waiting for their init containers). Pure."""
from __future__ import annotations

from ...sandbox import ContainerInfo
from .runs import ContainerRun, finished_second, with_message


def report(init: list[ContainerRun], apps: list[ContainerRun],
           raw: dict[str, ContainerInfo]) -> tuple[list[ContainerInfo], list[ContainerInfo]]:
    """(init containers, containers) as the kubelet reports them; `raw` is podman's view by name."""
    has_init = bool(init)
    return ([container_info(cs, raw.get(cs.name), has_init) for cs in init],
            [container_info(cs, raw.get(cs.name), has_init) for cs in apps])


def container_info(cs: ContainerRun, raw: ContainerInfo | None, has_init: bool) -> ContainerInfo:
    if raw is None:
        # As the kubelet: a pod with init containers shows PodInitializing until each is created.
        reason, message = cs.waiting or (("PodInitializing" if has_init else "ContainerCreating"), None)
        return ContainerInfo(name=cs.name, state="waiting", reason=reason, message=message,
                             restart_count=cs.restarts, image=cs.spec.image, ready=False, started=False,
                             last_state=cs.last_terminated)
    raw = ContainerInfo(**{**raw.__dict__})
    if raw.state == "terminated" and cs.message:  # read on its exit (termlog.py)
        raw.message = with_message(raw.message, cs.message)
    info = ContainerInfo(**{**raw.__dict__})
    if info.state == "terminated" and cs.reading and finished_second(info.finished_at) != cs.read_finished:
        # Its exit is reported with its termination message, as the kubelet does, a moment later.
        info.state = "running"
        info.exit_code = info.reason = info.message = info.finished_at = None
    if info.state == "running" and cs.post_starting:
        # As the kubelet: a container whose postStart hook runs has not been started yet.
        info.state, info.reason, info.started_at = "waiting", "ContainerCreating", None
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
