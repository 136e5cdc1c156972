"""A meta-cluster Pod's status -> the provider-neutral `SandboxInstance` (pure), and a Pod's
labels -> the SandboxPod it runs.

The meta kubelet is the sandbox's kubelet: restarts, probes, init containers and sidecars
are its, so containers keep their states, reasons, restart counts, last states and
readiness as it reports them. Phases: Pending "creating", Running "running" (also while
being deleted: a kubelet's pod keeps its phase through its grace period), Succeeded
"exited", Failed "failed" with the kubelet's reason and message (Evicted,
DeadlineExceeded...), anything else "unknown". A Pod the scheduler cannot place yet says
so (PodScheduled False: its reason, Unschedulable) without failing: it
may fit later, as a tenant's Pending pod does. Not the scheduler's own message: it counts
and describes the meta-cluster's nodes, which are no tenant's business.

The Pod's IP is the sandbox's; the host's address reported is the sandbox's too (as on
ECI): a meta node's address never reaches a tenant.
"""
from __future__ import annotations

from ...models.contracts import LABEL_HOME, LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_UID
from ..sandbox import ContainerInfo, SandboxInstance, SandboxRef
from .podbuild import ANNOTATION_NAME

UNSCHEDULABLE = "no node of the meta-cluster can run the pod now; it stays Pending until one can"
STATES = {"Pending": "creating", "Running": "running", "Succeeded": "exited", "Failed": "failed"}


def state_info(name: str, state: dict | None, **common) -> ContainerInfo | None:
    """One core/v1 ContainerState; None for an empty one (no previous run)."""
    state = state or {}
    if "running" in state:
        return ContainerInfo(name=name, state="running", started_at=(state["running"] or {}).get("startedAt"),
                             **common)
    if "terminated" in state:
        t = state["terminated"] or {}
        code = int(t.get("exitCode") or 0)
        return ContainerInfo(name=name, state="terminated", exit_code=code,
                             reason=t.get("reason") or ("Completed" if code == 0 else "Error"),
                             message=t.get("message"), started_at=t.get("startedAt"),
                             finished_at=t.get("finishedAt"), **common)
    if "waiting" in state:
        w = state["waiting"] or {}
        return ContainerInfo(name=name, state="waiting", reason=w.get("reason") or "ContainerCreating",
                             message=w.get("message"), **common)
    return None


def container_info(cs: dict) -> ContainerInfo:
    name = cs.get("name") or ""
    common = dict(restart_count=int(cs.get("restartCount") or 0), image=cs.get("image") or None,
                  image_id=cs.get("imageID") or None, container_id=cs.get("containerID") or None,
                  ready=bool(cs.get("ready")), started=cs.get("started"))
    info = state_info(name, cs.get("state"), **common) or ContainerInfo(
        name=name, state="waiting", reason="ContainerCreating", **common)
    info.last_state = state_info(name, cs.get("lastState"))
    return info


def _condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def instance_from_pod(ref: SandboxRef, pod: dict) -> SandboxInstance:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    ip = status.get("podIP") or None
    inst = SandboxInstance(
        ref, pod["metadata"]["name"], STATES.get(phase, "unknown"), ip=ip, host_ip=ip,
        started_at=status.get("startTime"),
        containers=[container_info(c) for c in status.get("containerStatuses") or []],
        init_containers=[container_info(c) for c in status.get("initContainerStatuses") or []],
        ephemeral_containers=[container_info(c) for c in status.get("ephemeralContainerStatuses") or []])
    if phase == "Failed":
        inst.reason = status.get("reason") or "Failed"
        inst.message = status.get("message") or "the meta-cluster's kubelet failed the pod"
        return inst
    scheduled = _condition(status, "PodScheduled")
    if scheduled.get("status") == "False":
        inst.reason = scheduled.get("reason") or "Unschedulable"
        inst.message = UNSCHEDULABLE
    return inst


def ref_from_pod(pod: dict) -> SandboxRef | None:
    """The SandboxPod a Pod of this provider runs; None for a Pod missing any of the three."""
    meta = pod.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    namespace, name, uid = meta.get("namespace"), notes.get(ANNOTATION_NAME), labels.get(LABEL_SANDBOX_UID)
    if not (namespace and name and uid) or labels.get(LABEL_SANDBOX_NAMESPACE) != namespace:
        return None
    return SandboxRef(namespace, name, uid)


def home_of(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_HOME)
