"""SandboxPod status from what the provider reports: pure, like the kubelet's own logic."""
from __future__ import annotations

from ..conditions import condition, now_rfc3339
from ..models.podspec import PodSpec
from ..providers.base import ContainerInfo, ProviderError, SandboxInstance


def container_state(info: ContainerInfo) -> dict:
    if info.state == "running":
        return {"running": {"startedAt": info.started_at}} if info.started_at else {"running": {}}
    if info.state == "terminated":
        term = {"exitCode": info.exit_code or 0, "reason": info.reason, "startedAt": info.started_at,
                "finishedAt": info.finished_at, "message": info.message}
        return {"terminated": {k: v for k, v in term.items() if v is not None}}
    return {"waiting": {k: v for k, v in (("reason", info.reason), ("message", info.message)) if v}}


def pod_phase(spec: PodSpec, infos: list[ContainerInfo]) -> str:
    if not infos or len(infos) < len(spec.containers):
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


def _status_by_name(prev: dict) -> dict[str, dict]:
    return {c.get("name"): c for c in prev.get("containerStatuses") or []}


def container_statuses(spec: PodSpec, inst: SandboxInstance | None, error: ProviderError | None,
                       prev: dict) -> list[dict]:
    infos = {i.name: i for i in (inst.containers if inst else [])}
    before = _status_by_name(prev)
    out = []
    for c in spec.containers:
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
        status = {"name": c.name, "image": c.image, "imageID": info.image_id or "",
                  "containerID": info.container_id or "", "ready": info.state == "running",
                  "started": info.state == "running", "restartCount": info.restart_count,
                  "state": container_state(info)}
        old = before.get(c.name, {})
        if info.restart_count > old.get("restartCount", 0) and "terminated" in (old.get("state") or {}):
            status["lastState"] = {"terminated": old["state"]["terminated"]}
        elif old.get("lastState"):
            status["lastState"] = old["lastState"]
        out.append(status)
    return out


def build_status(spec: PodSpec, inst: SandboxInstance | None, *, prev: dict, generation: int | None,
                 provider: str, error: ProviderError | None = None, now: str | None = None) -> dict:
    now = now or now_rfc3339()
    prev_conditions = prev.get("conditions") or []
    statuses = container_statuses(spec, inst, error, prev)
    phase = pod_phase(spec, inst.containers if inst else [])
    if prev.get("phase") in ("Succeeded", "Failed") and phase in ("Pending", "Running"):
        phase = prev["phase"]  # terminal phases are terminal, as for Pods
    if error is not None and not error.retryable:
        phase = "Failed"
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
        condition("Scheduled", scheduled if scheduled or error else None,
                  "Scheduled" if scheduled else (error.reason if error else "Pending"),
                  f"sandbox {inst.instance_id} on provider {provider}" if inst else (str(error) if error else ""),
                  generation=generation, previous=prev_conditions, now=now),
        condition("ContainersReady", all_ready, ready_reason, ready_msg, generation=generation,
                  previous=prev_conditions, now=now),
        condition("Ready", all_ready, ready_reason, ready_msg, generation=generation,
                  previous=prev_conditions, now=now),
    ]
    status = {
        "phase": phase,
        "conditions": conds,
        "containerStatuses": statuses,
        "provider": provider,
        "observedGeneration": generation,
        "reason": error.reason if error else None,
        "message": str(error) if error else None,
        "podIP": inst.ip if inst else None,
        "hostIP": inst.host_ip if inst else None,
        "instanceID": inst.instance_id if inst else None,
        "startTime": prev.get("startTime") or (inst.started_at if inst and inst.started_at else
                                                (now if inst else None)),
    }
    # Explicit nulls clear stale values under a merge patch.
    return status
