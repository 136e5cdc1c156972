"""podman's inspection of a pod's containers -> the provider-neutral `SandboxInstance`
(pure): container states as the kubelet reports them, the pod's state, its addresses."""
from __future__ import annotations

from ...models.contracts import (LABEL_CONTAINER, LABEL_EPHEMERAL_CONTAINER, LABEL_INIT_CONTAINER, LABEL_SANDBOX_NAME, LABEL_SANDBOX_NAMESPACE,
                                 LABEL_SANDBOX_UID)
from ..sandbox import ContainerInfo, SandboxInstance, SandboxRef
from .spec import container_name

_ZERO_TIME = "0001-01-01"


def rfc3339(ts: str | None) -> str | None:
    if not ts or ts.startswith(_ZERO_TIME):
        return None
    return ts[:19] + "Z"


def container_info(name: str, data: dict) -> ContainerInfo:
    st = data.get("State", {})
    status = st.get("Status", "unknown")
    common = dict(name=name, restart_count=int(data.get("RestartCount", 0)),
                  image=data.get("ImageName"), image_id=data.get("Image"),
                  container_id=f"podman://{data.get('Id', '')}")
    if status == "running" or st.get("Running"):
        return ContainerInfo(state="running", started_at=rfc3339(st.get("StartedAt")), **common)
    if status in ("exited", "stopped") and rfc3339(st.get("StartedAt")):
        code = int(st.get("ExitCode", 0))
        reason = "OOMKilled" if st.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        return ContainerInfo(state="terminated", exit_code=code, reason=reason, message=st.get("Error") or None,
                             started_at=rfc3339(st.get("StartedAt")),
                             finished_at=rfc3339(st.get("FinishedAt")), **common)
    if st.get("Error"):
        return ContainerInfo(state="waiting", reason="RunContainerError", message=st["Error"], **common)
    return ContainerInfo(state="waiting", reason="ContainerCreating", **common)


def instance(ref: SandboxRef, pod_id: str, data: list[dict], infra: str | None, ip: str | None,
             host_ip: str | None) -> SandboxInstance:
    containers, init_containers, ephemeral = [], [], []
    for d in data:
        labels = d.get("Config", {}).get("Labels") or {}
        cname = labels.get(LABEL_CONTAINER)
        # A restarted container's previous run (kept for its logs) is not the container.
        if d.get("Id") != infra and cname and d.get("Name", "").lstrip("/") == container_name(ref, cname):
            # Ephemeral containers (`kubectl debug`) are reported apart: they make no phase.
            kind = (ephemeral if labels.get(LABEL_EPHEMERAL_CONTAINER) else
                    init_containers if labels.get(LABEL_INIT_CONTAINER) else containers)
            kind.append(container_info(cname, d))
    states = {c.state for c in containers}
    state = "running" if "running" in states else ("exited" if states == {"terminated"} else "creating")
    started = min((c.started_at for c in containers + init_containers if c.started_at), default=None)
    return SandboxInstance(ref, pod_id, state, ip=ip, host_ip=host_ip, started_at=started,
                           containers=containers, init_containers=init_containers, ephemeral_containers=ephemeral)


def pod_addresses(data: list[dict], infra: str | None, host_ip: str | None) -> tuple[str | None, str | None]:
    """(pod IP, host IP) from the infra container's networks; `host_ip` where it has no gateway."""
    ip = None
    for d in data:
        if d.get("Id") == infra:
            for net in (d.get("NetworkSettings", {}).get("Networks") or {}).values():
                ip = net.get("IPAddress") or ip
                host_ip = net.get("Gateway") or host_ip
    return ip, host_ip


def ref_from_labels(labels: dict) -> SandboxRef | None:
    try:
        return SandboxRef(labels[LABEL_SANDBOX_NAMESPACE], labels[LABEL_SANDBOX_NAME], labels[LABEL_SANDBOX_UID])
    except KeyError:
        return None
