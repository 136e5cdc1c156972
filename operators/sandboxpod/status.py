"""SandboxPod status from what the provider reports: pure, like the kubelet's own logic."""
from __future__ import annotations

from ..conditions import condition, now_rfc3339
from ..models.contracts import CONDITION_CONTAINERS_READY, CONDITION_INITIALIZED, CONDITION_READY, CONDITION_SCHEDULED
from ..models.podspec import PodSpec
from ..providers.errors import ProviderError
from ..providers.sandbox import ContainerInfo, SandboxInstance


def container_state(info: ContainerInfo) -> dict:
    if info.state == "running":
        return {"running": {"startedAt": info.started_at}} if info.started_at else {"running": {}}
    if info.state == "terminated":
        term = {"exitCode": info.exit_code or 0, "reason": info.reason, "startedAt": info.started_at,
                "finishedAt": info.finished_at, "message": info.message}
        return {"terminated": {k: v for k, v in term.items() if v is not None}}
    return {"waiting": {k: v for k, v in (("reason", info.reason), ("message", info.message)) if v}}


def initialized(spec: PodSpec, init_infos: list[ContainerInfo], infos: list[ContainerInfo]) -> bool:
    """Every init container succeeded (or, their records gone, a container has run since)."""
    if not spec.initContainers:
        return True
    done = {i.name for i in init_infos if i.state == "terminated" and (i.exit_code or 0) == 0}
    # A sidecar counts once it has started: it runs on next to the containers.
    done |= {i.name for i in init_infos if i.name in sidecars(spec) and i.state == "running" and i.started is not False}
    if all(c.name in done for c in spec.initContainers):
        return True
    return any(i.state == "running" or i.started_at or i.restart_count for i in infos)


def init_failed(spec: PodSpec, init_infos: list[ContainerInfo]) -> bool:
    """A failed init container is final only under restartPolicy Never."""
    return (spec.restartPolicy or "Always") == "Never" and any(
        i.state == "terminated" and (i.exit_code or 0) != 0 and i.name not in sidecars(spec) for i in init_infos)


def sidecars(spec: PodSpec) -> set[str]:
    """Init containers with restartPolicy Always."""
    return {c.name for c in spec.initContainers or [] if c.restartPolicy == "Always"}


def first_start_pending(info: ContainerInfo) -> bool:
    """Being created for the first time: no error to report, never started."""
    return (info.state == "waiting" and (info.reason or "ContainerCreating") == "ContainerCreating"
            and not info.restart_count and not info.started_at)


def pod_phase(spec: PodSpec, infos: list[ContainerInfo], init_infos: list[ContainerInfo] | None = None) -> str:
    if not initialized(spec, init_infos or [], infos):
        return "Failed" if init_failed(spec, init_infos or []) else "Pending"
    if not infos or len(infos) < len(spec.containers):
        return "Pending"
    if any(first_start_pending(i) for i in infos):
        # The kubelet starts a pod's containers in one sync and reports after it: no pod is
        # Running while one of its containers is still being created for the first time
        # (clients that wait for Running then read every container's logs, as the
        # conformance DNS tests do).
        return "Pending"
    states = {i.state for i in infos}
    if "running" in states:
        return "Running"
    if states == {"terminated"}:
        all_ok = all((i.exit_code or 0) == 0 for i in infos)
        policy = spec.restartPolicy or "Always"
        if policy == "Never":
            return "Succeeded" if all_ok else "Failed"
        if policy == "OnFailure":
            return "Succeeded" if all_ok else "Running"
        return "Running"
    if any(i.restart_count > 0 or i.started_at for i in infos):
        return "Running"
    return "Pending"


def _status_by_name(prev: dict, key: str = "containerStatuses") -> dict[str, dict]:
    return {c.get("name"): c for c in prev.get(key) or []}


def container_statuses(spec: PodSpec, inst: SandboxInstance | None, error: ProviderError | None,
                       prev: dict, *, init: bool = False) -> list[dict]:
    """containerStatuses, or with `init` initContainerStatuses, in the spec's order."""
    infos = {i.name: i for i in ((inst.init_containers if init else inst.containers) if inst else [])}
    before = _status_by_name(prev, "initContainerStatuses" if init else "containerStatuses")
    out = []
    for c in (spec.initContainers or []) if init else spec.containers:
        info = infos.get(c.name)
        if info is None:
            reason = error.reason if error else "ContainerCreating"
            waiting = {"reason": reason}
            if error:
                waiting["message"] = str(error)
            old = before.get(c.name, {})
            out.append({"name": c.name, "image": c.image, "ready": False, "started": False,
                        "restartCount": old.get("restartCount", 0), "state": {"waiting": waiting}})
            continue
        running = info.state == "running"
        # An init container is ready once it has completed; a container (and a sidecar) while it runs.
        ready = (info.state == "terminated" and (info.exit_code or 0) == 0) \
            if init and c.name not in sidecars(spec) else running
        status = {"name": c.name, "image": c.image, "imageID": info.image_id or "",
                  "containerID": info.container_id or "",
                  "ready": info.ready if info.ready is not None else ready,
                  "started": info.started if info.started is not None else running,
                  "restartCount": info.restart_count, "state": container_state(info)}
        old = before.get(c.name, {})
        if info.last_state is not None:  # the provider knows the previous run (its kubelet restarted it)
            status["lastState"] = container_state(info.last_state)
        elif info.restart_count > old.get("restartCount", 0) and "terminated" in (old.get("state") or {}):
            status["lastState"] = {"terminated": old["state"]["terminated"]}
        elif old.get("lastState"):
            status["lastState"] = old["lastState"]
        out.append(status)
    return out


def ephemeral_statuses(containers: list[dict], inst: SandboxInstance | None) -> list[dict] | None:
    """ephemeralContainerStatuses, in the order they were added: never ready, never restarted."""
    infos = {i.name: i for i in inst.ephemeral_containers} if inst else {}
    out = []
    for c in containers:
        name, info = c["name"], infos.get(c["name"])
        if info is None:
            out.append({"name": name, "image": c.get("image"), "ready": False, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}})
            continue
        out.append({"name": name, "image": c.get("image"), "imageID": info.image_id or "",
                    "containerID": info.container_id or "", "ready": False, "restartCount": 0,
                    "state": container_state(info)})
    return out or None


def build_status(spec: PodSpec, inst: SandboxInstance | None, *, prev: dict, generation: int | None,
                 provider: str, error: ProviderError | None = None, now: str | None = None,
                 ephemeral: list[dict] | None = None) -> dict:
    now = now or now_rfc3339()
    prev_conditions = prev.get("conditions") or []
    statuses = container_statuses(spec, inst, error, prev)
    init_statuses = container_statuses(spec, inst, error, prev, init=True)
    phase = pod_phase(spec, inst.containers if inst else [], inst.init_containers if inst else [])
    init_done = initialized(spec, inst.init_containers if inst else [], inst.containers if inst else [])
    if prev.get("phase") in ("Succeeded", "Failed") and phase in ("Pending", "Running"):
        phase = prev["phase"]  # terminal phases are terminal, as for Pods
    if error is not None and not error.retryable:
        phase = "Failed"
    if inst is not None and inst.state == "failed" and inst.reason:
        phase = "Failed"  # the provider's kubelet failed the pod (an eviction), with the reason why
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    scheduled = inst is not None
    if all_ready:
        ready_reason, ready_msg = "ContainersReady", ""
    elif phase in ("Succeeded", "Failed"):
        ready_reason, ready_msg = "PodCompleted", ""
    else:
        ready_reason, ready_msg = "ContainersNotReady", f"containers with unready status: [{' '.join(not_ready)}]"
    conds = [
        condition(CONDITION_SCHEDULED, scheduled if scheduled or error else None,
                  "Scheduled" if scheduled else (error.reason if error else "Pending"),
                  f"sandbox {inst.instance_id} on provider {provider}" if inst else (str(error) if error else ""),
                  generation=generation, previous=prev_conditions, now=now),
        condition(CONDITION_INITIALIZED, init_done,
                  "InitContainersCompleted" if init_done else "ContainersNotInitialized",
                  "" if init_done else "containers with incomplete status: "
                  f"[{' '.join(s['name'] for s in init_statuses if not s['ready'])}]",
                  generation=generation, previous=prev_conditions, now=now),
        condition(CONDITION_CONTAINERS_READY, all_ready, ready_reason, ready_msg, generation=generation,
                  previous=prev_conditions, now=now),
        condition(CONDITION_READY, all_ready, ready_reason, ready_msg, generation=generation,
                  previous=prev_conditions, now=now),
    ]
    status = {
        "phase": phase,
        "conditions": conds,
        "containerStatuses": statuses,
        "initContainerStatuses": init_statuses or None,
        "ephemeralContainerStatuses": ephemeral_statuses(ephemeral or [], inst),
        "provider": provider,
        "observedGeneration": generation,
        "reason": error.reason if error else (inst.reason if inst else None),
        "message": str(error) if error else (inst.message if inst else None),
        "podIP": inst.ip if inst else None,
        "hostIP": inst.host_ip if inst else None,
        "instanceID": inst.instance_id if inst else None,
        "startTime": prev.get("startTime") or (inst.started_at if inst and inst.started_at else
                                                (now if inst else None)),
    }
    # Explicit nulls clear stale values under a merge patch.
    return status
