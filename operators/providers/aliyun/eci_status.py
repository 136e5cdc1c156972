"""One element of DescribeContainerGroups' `ContainerGroups` -> the provider-neutral
`SandboxInstance` (pure), and a group's tags -> the SandboxPod it runs.

Group statuses (ECI API reference, DescribeContainerGroups) and what they become:

- Scheduling, Pending: "creating" (resources being found, images pulled);
- Running, Restarting, Updating: "running" (Restarting and Updating are ECI restarting or
  changing a running group: its containers say how far it got);
- Terminating: "running". The group is being deleted (by us, or reclaimed); as a kubelet's
  pod in its grace period, it keeps its phase until it is gone, and its containers say
  whether they still run;
- Succeeded: "exited";
- Failed, Expired, ScheduleFailed: "failed", with a reason and message: the latest Warning
  event's (ScheduleFailed: e.g. no stock in the zone, a quota exceeded), else the status's
  own (Expired: the account's overdue payment stopped the group).

Anything else is "unknown". Container states (Waiting, Running, Terminated) map to the
kubelet's, with ECI's Reason (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, Completed,
Error...) kept; Ready comes from ECI's own probes.
"""
from __future__ import annotations

from datetime import datetime, timezone

# The group's owner, as tags: the same keys as the local provider's sandbox labels.
from ...models.contracts import LABEL_SANDBOX_NAME as TAG_NAME, LABEL_SANDBOX_NAMESPACE as TAG_NAMESPACE
from ...models.contracts import LABEL_SANDBOX_UID as TAG_UID
from ..sandbox import ContainerInfo, SandboxInstance, SandboxRef

STATES = {
    "Scheduling": "creating", "Pending": "creating",
    "Running": "running", "Restarting": "running", "Updating": "running", "Terminating": "running",
    "Succeeded": "exited",
    "Failed": "failed", "Expired": "failed", "ScheduleFailed": "failed",
}
FAILED_MESSAGES = {
    "Expired": "the group was stopped: the account has an overdue payment",
    "ScheduleFailed": "ECI could not create the group",
    "Failed": "the group failed",
}


def rfc3339(ts: str | None) -> str | None:
    """A cloud timestamp as the API server writes one (UTC, seconds, Z); None when empty."""
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_info(name: str, st: dict | None, **common) -> ContainerInfo:
    """One ECI container state (CurrentState or PreviousState) as the kubelet reports it."""
    st = st or {}
    state = st.get("State") or ""
    reason = st.get("Reason") or st.get("DetailStatus") or None
    message = st.get("Message") or None
    if state == "Running":
        return ContainerInfo(name=name, state="running", started_at=rfc3339(st.get("StartTime")), **common)
    if state == "Terminated":
        code = int(st.get("ExitCode") or 0)
        return ContainerInfo(name=name, state="terminated", exit_code=code,
                             reason=reason or ("Completed" if code == 0 else "Error"), message=message,
                             started_at=rfc3339(st.get("StartTime")), finished_at=rfc3339(st.get("FinishTime")),
                             **common)
    return ContainerInfo(name=name, state="waiting", reason=reason or "ContainerCreating", message=message, **common)


def container_info(group_id: str, c: dict, *, init: bool = False) -> ContainerInfo:
    """ECI's Ready is its readiness probe's verdict; an init container has none (ECI says
    false even once it completed), so there the state decides, as the kubelet's does."""
    name = c.get("Name") or ""
    restarts = int(c.get("RestartCount") or 0)
    ready = c.get("Ready")
    info = state_info(name, c.get("CurrentState"), restart_count=restarts, image=c.get("Image") or None,
                      ready=ready if isinstance(ready, bool) and not init else None,
                      container_id=f"eci://{group_id}.{name}.{restarts}")
    previous = c.get("PreviousState") or {}
    if previous.get("State"):
        info.last_state = state_info(name, previous)
    return info


def latest_warning(group: dict) -> dict | None:
    """The group's most recent Warning event (by LastTimestamp, else its place in the list)."""
    warnings = [(rfc3339(e.get("LastTimestamp")) or "", i, e)
                for i, e in enumerate(group.get("Events") or []) if e.get("Type") == "Warning"]
    return max(warnings, key=lambda w: (w[0], w[1]))[2] if warnings else None


def instance_from_group(ref: SandboxRef, group: dict) -> SandboxInstance:
    group_id = group.get("ContainerGroupId") or ""
    status = group.get("Status") or ""
    state = STATES.get(status, "unknown")
    containers = [container_info(group_id, c) for c in group.get("Containers") or []]
    init = [container_info(group_id, c, init=True) for c in group.get("InitContainers") or []]
    ip = group.get("IntranetIp") or None
    started = min((c.started_at for c in containers + init if c.started_at), default=None)
    inst = SandboxInstance(ref, group_id, state, ip=ip, host_ip=ip, started_at=started, containers=containers,
                           init_containers=init)
    if state == "failed":
        event = latest_warning(group) or {}
        inst.reason = event.get("Reason") or status
        inst.message = event.get("Message") or FAILED_MESSAGES[status]
    return inst


# The cloud refuses a tag value that starts with these; a Kubernetes name may ("aliyun-web").
# Such a value is sent behind TAG_ESCAPE, which no Kubernetes name contains.
RESERVED_TAG_PREFIXES = ("aliyun", "acs:")
TAG_ESCAPE = "~"


def tag_value(value: str) -> str:
    """A value as a tag carries it (`untag_value` reads it back)."""
    return TAG_ESCAPE + value if value.startswith((*RESERVED_TAG_PREFIXES, TAG_ESCAPE)) else value


def untag_value(value: str | None) -> str | None:
    return value[len(TAG_ESCAPE):] if value and value.startswith(TAG_ESCAPE) else value


def ref_from_tags(tags: list[dict] | None) -> SandboxRef | None:
    """The SandboxPod a group runs, from its tags; None when any of the three is missing."""
    values = {t.get("Key"): untag_value(t.get("Value")) for t in tags or [] if isinstance(t, dict)}
    namespace, name, uid = values.get(TAG_NAMESPACE), values.get(TAG_NAME), values.get(TAG_UID)
    if not (namespace and name and uid):
        return None
    return SandboxRef(namespace, name, uid)
