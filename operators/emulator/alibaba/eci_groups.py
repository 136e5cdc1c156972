"""One emulated container group: its record, its status derived from its containers'
(pure), and its view as DescribeContainerGroups shows it, in the cloud's field names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import params as p
from .backends import ContainerState, ContainerStatus, Group
from .signature import format_time

FINAL = frozenset({"Succeeded", "Failed", "Expired", "ScheduleFailed"})
DEFAULT_CPU, DEFAULT_MEMORY = 2.0, 4.0  # the cloud's defaults for a group given neither


@dataclass
class GroupRecord:
    id: str
    seq: int  # creation order: the pagination cursor
    group: Group  # unflattened create parameters + ContainerGroupId + RegionId
    created: float
    ip: str
    account: str  # whose key made it (accounts.py)
    status: str = "Scheduling"
    events: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, ContainerStatus] = field(default_factory=dict)
    final_at: float | None = None
    moved_at: float = 0.0  # when the status last changed

    @property
    def name(self) -> str:
        return self.group.get("ContainerGroupName", "")

    @property
    def tags(self) -> list[dict[str, str]]:
        return [{"Key": t.get("Key", ""), "Value": t.get("Value", "")} for t in self.group.get("Tag", [])]

    def event(self, now: float, kind: str, reason: str, message: str) -> None:
        last = self.events[-1] if self.events else None
        if last and (last["Type"], last["Reason"], last["Message"]) == (kind, reason, message):
            last["Count"] += 1
            last["LastTimestamp"] = format_time(now)
            return
        self.events.append({"Type": kind, "Reason": reason, "Message": message, "Count": 1,
                            "FirstTimestamp": format_time(now), "LastTimestamp": format_time(now),
                            "Name": self.id})


def group_status(group: Group, statuses: dict[str, ContainerStatus]) -> str:
    """The status ECI reports for a started group, from its containers' states."""
    policy = group.get("RestartPolicy") or "Always"
    inits = [statuses.get(c.get("Name")) for c in group.get("InitContainer", [])]
    if any(s and s.current.state == "Terminated" and s.current.exit_code for s in inits):
        return "Failed" if policy == "Never" else "Restarting"
    mains = [statuses.get(c.get("Name")) for c in group.get("Container", [])]
    if any(s is None or (s.current.state == "Waiting" and not _has_run(s)) for s in mains):
        return "Pending"
    if all(s.current.state == "Terminated" for s in mains):
        clean = all(s.current.exit_code == 0 for s in mains)
        if policy == "Never" or (policy == "OnFailure" and clean):
            return "Succeeded" if clean else "Failed"
        return "Restarting"
    # A container waiting to be restarted (CrashLoopBackOff) has started: the group has too.
    return "Running" if any(s.current.state == "Running" for s in mains) else "Restarting"


def _has_run(s: ContainerStatus) -> bool:
    return s.restart_count > 0 or s.previous is not None


def _state(state: ContainerState | None) -> dict[str, Any]:
    if state is None:
        return {}
    return _present({"State": state.state, "DetailStatus": state.detail_status, "Reason": state.reason,
            "Message": state.message, "ExitCode": state.exit_code, "Signal": state.signal,
            "StartTime": format_time(state.start_time) if state.start_time else None,
            "FinishTime": format_time(state.finish_time) if state.finish_time else None})


def _present(d: dict[str, Any]) -> dict[str, Any]:
    """The cloud leaves out a field with no value (a running container's ExitCode)."""
    return {k: v for k, v in d.items() if v is not None}


def _container(spec: dict[str, Any], status: ContainerStatus | None) -> dict[str, Any]:
    status = status or ContainerStatus(current=ContainerState(reason="ContainerCreating"))
    return _present({
        "Name": spec.get("Name"), "Image": spec.get("Image"),
        "Cpu": p.number(spec, "Cpu", 0.0), "Memory": p.number(spec, "Memory", 0.0),
        "WorkingDir": p.text(spec, "WorkingDir"), "ImagePullPolicy": p.text(spec, "ImagePullPolicy"),
        "Commands": [str(x) for x in spec.get("Command", [])], "Args": [str(x) for x in spec.get("Arg", [])],
        "EnvironmentVars": [{"Key": e.get("Key"), "Value": e.get("Value")} for e in spec.get("EnvironmentVar", [])],
        "Ports": [{"Port": p.integer(x, "Port"), "Protocol": p.text(x, "Protocol") or "TCP"}
                  for x in spec.get("Port", [])],
        "VolumeMounts": [{"Name": m.get("Name"), "MountPath": m.get("MountPath"),
                          "ReadOnly": p.boolean(m, "ReadOnly")} for m in spec.get("VolumeMount", [])],
        "Ready": status.ready, "RestartCount": status.restart_count,
        "CurrentState": _state(status.current), "PreviousState": _state(status.previous),
    })


def render(record: GroupRecord) -> dict[str, Any]:
    g = record.group
    containers = g.get("Container", [])
    cpu = p.number(g, "Cpu") or sum(p.number(c, "Cpu", 0.0) for c in containers) or DEFAULT_CPU
    memory = p.number(g, "Memory") or sum(p.number(c, "Memory", 0.0) for c in containers) or DEFAULT_MEMORY
    final = format_time(record.final_at) if record.final_at else None
    return _present({
        "ContainerGroupId": record.id, "ContainerGroupName": record.name, "Status": record.status,
        "RegionId": g.get("RegionId"), "ZoneId": p.text(g, "ZoneId") or f"{g.get('RegionId')}-a",
        "VSwitchId": g.get("VSwitchId"), "VpcId": g.get("VpcId"), "SecurityGroupId": g.get("SecurityGroupId"),
        "IntranetIp": record.ip if record.status not in ("Scheduling", "ScheduleFailed") else "",
        "Cpu": cpu, "Memory": memory, "RestartPolicy": g.get("RestartPolicy") or "Always",
        "CreationTime": format_time(record.created),
        "SucceededTime": final if record.status == "Succeeded" else None,
        "FailedTime": final if record.status in ("Failed", "ScheduleFailed") else None,
        "ExpiredTime": final if record.status == "Expired" else None,
        "Tags": record.tags, "Events": [dict(e) for e in record.events],
        "Containers": [_container(c, record.statuses.get(c.get("Name"))) for c in containers],
        "InitContainers": [_container(c, record.statuses.get(c.get("Name"))) for c in g.get("InitContainer", [])],
    })
