"""Environment values only known once the sandbox exists: the pod's and the host's IP.

The virtual node leaves `status.podIP`/`status.hostIP` (and the plural forms) as fieldRefs.
A container that reads them is started only after the pod's network exists: the pod (its
infra container) is created and started first, its address read, and the values passed
as literal `--env`, as the kubelet does once the sandbox has its IP.
"""
from __future__ import annotations

from ...models.podspec import Container, PodSpec
from ..sandbox import SandboxRef
from .spec import kernel_hostname

LATE_FIELDS = {"status.podIP": "pod", "status.podIPs": "pod", "status.hostIP": "host", "status.hostIPs": "host"}


def late_fields(c: Container) -> set[str]:
    return {e.valueFrom.fieldRef.fieldPath for e in c.env or []
            if e.valueFrom and e.valueFrom.fieldRef and e.valueFrom.fieldRef.fieldPath in LATE_FIELDS}


def late_values(pod_ip: str | None, host_ip: str | None) -> dict[str, str]:
    ips = {"pod": pod_ip or "", "host": host_ip or ""}
    return {path: ips[which] for path, which in LATE_FIELDS.items()}


# podman's default namespaces of a pod (uts, ipc, net), and pid for shareProcessNamespace;
# never cgroup, which podman 4.3 cannot share with the pod as the cgroup parent.
SHARED = "ipc,net,uts"


def pod_create_args(ref: SandboxRef, spec: PodSpec, *, network: str, dns: list[str] | None) -> list[str]:
    """`podman pod create`, as `podman run --pod=new:` would create it; with
    shareProcessNamespace its containers also share the infra container's pid namespace."""
    args = ["pod", "create", f"--name={ref.instance_name}", f"--network={network}",
            f"--hostname={kernel_hostname(ref, spec)}"]
    if spec.shareProcessNamespace:
        args.append(f"--share={SHARED},pid")
    return args + list(dns or [])


def infra_addresses(infra: dict) -> tuple[str | None, str | None]:
    """(pod IP, gateway) from `podman container inspect` of the infra container."""
    ip = gw = None
    for net in (infra.get("NetworkSettings", {}).get("Networks") or {}).values():
        ip = net.get("IPAddress") or ip
        gw = net.get("Gateway") or gw
    return ip, gw
