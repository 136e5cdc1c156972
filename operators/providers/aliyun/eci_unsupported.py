"""The fields of a PodSpec that ECI cannot express (pure), for admission to refuse by name
rather than the provider dropping them. Each entry says why: the ECI API reference
(CreateContainerGroup, 2018-08-08) has no parameter for it, or takes fewer values.

What ECI does express is not listed: env from the pod's address (`FieldRef.FieldPath`
status.podIP; the host's address is the same, a group being its own host), emptyDir (with
medium and sizeLimit), ConfigMap / Secret / downward API / projected files (ConfigFileVolume),
NFS, hostAliases, dnsConfig, shareProcessNamespace, activeDeadlineSeconds, readiness and
liveness probes (exec, httpGet, tcpSocket), postStart / preStop exec and httpGet hooks,
runAsUser, runAsGroup and runAsNonRoot (containers), readOnlyRootFilesystem, tty, stdin,
terminationMessagePath, and the safe sysctls below.
"""
from __future__ import annotations

from ...models.podspec import Container, PodSpec, Probe
from ...models.securitycontext import DEFAULT_CAPABILITIES
from .eci_container import ECI_CAPABILITIES, ECI_ENV_KEY, LATE_FIELDS, cap_name

MAX_CONTAINERS = 20  # "a maximum of 20 containers within each elastic container instance" (ECI user guide)
MAX_VOLUMES = 20  # "最多可以指定20个数据卷" (ROS ALIYUN::ECI::ContainerGroup, Volume)
# Sysctls: SecurityContext.Sysctl takes only these two; HostSecurityContext.Sysctl takes
# net.* but for tcp_syncookies and these two. kernel.shm_rmid_forced fits neither.
ECI_SAFE_SYSCTLS = ("net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")
NO_HOST_SYSCTLS = ECI_SAFE_SYSCTLS + ("net.ipv4.tcp_syncookies",)


def sysctl_param(name: str) -> str | None:
    """The group parameter that sets this sysctl, None where none does."""
    name = name.replace("/", ".")
    if name in ECI_SAFE_SYSCTLS:
        return "SecurityContext.Sysctl"
    if name.startswith("net.") and name not in NO_HOST_SYSCTLS:
        return "HostSecurityContext.Sysctl"
    return None


METADATA_FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid")

Found = list[tuple[str, str]]


def unsupported_fields(spec: PodSpec) -> list[str]:
    """The field paths ("spec.containers[0].startupProbe") ECI cannot express."""
    return [path for path, _ in unsupported(spec)]


def unsupported(spec: PodSpec) -> Found:
    """(field path, why) for every field of `spec` that ECI cannot express."""
    found: Found = []
    for key, items, limit in (("containers", spec.containers, MAX_CONTAINERS),
                              ("initContainers", spec.initContainers, MAX_CONTAINERS),
                              ("volumes", spec.volumes, MAX_VOLUMES)):
        if len(items or []) > limit:
            found.append((f"spec.{key}", f"ECI takes at most {limit}"))
    found += _pod_security(spec)
    for j, e in enumerate(spec.serviceEnv or []):
        if not ECI_ENV_KEY.match(e.name):
            found.append((f"spec.serviceEnv[{j}].name", "ECI takes only [A-Za-z_][A-Za-z0-9_]* env names"))
    for i, c in enumerate(spec.containers):
        found += _container(f"spec.containers[{i}]", c, init=False)
    for i, c in enumerate(spec.initContainers or []):
        found += _container(f"spec.initContainers[{i}]", c, init=True)
        found += _init_only(f"spec.initContainers[{i}]", c, spec)
    return found


def _pod_security(spec: PodSpec) -> Found:
    psc = spec.securityContext
    if psc is None:
        return []
    found: Found = []
    for key in ("fsGroup", "supplementalGroups", "seccompProfile", "appArmorProfile"):
        if getattr(psc, key) is not None:
            found.append((f"spec.securityContext.{key}", "ECI has no parameter for it; dropping it would weaken "
                                                          "or change what the pod asked for"))
    for j, s in enumerate(psc.sysctls or []):
        if sysctl_param(s.name) is None:
            found.append((f"spec.securityContext.sysctls[{j}]", f"ECI cannot set {s.name}"))
    return found


def _container(p: str, c: Container, *, init: bool) -> Found:
    found: Found = []
    for j, port in enumerate(c.ports or []):
        if port.protocol == "SCTP":
            found.append((f"{p}.ports[{j}].protocol", "ECI ports are TCP or UDP"))
    for j, e in enumerate(c.env or []):
        if not ECI_ENV_KEY.match(e.name):
            found.append((f"{p}.env[{j}].name", "ECI takes only [A-Za-z_][A-Za-z0-9_]* env names, up to 128"))
        ref = e.valueFrom.fieldRef if e.valueFrom else None
        if e.valueFrom and not (ref and ref.fieldPath in METADATA_FIELDS + LATE_FIELDS):
            found.append((f"{p}.env[{j}].valueFrom", "ECI resolves only the pod's address (status.podIP)"))
    for j, m in enumerate(c.volumeMounts or []):
        if m.subPathExpr:
            found.append((f"{p}.volumeMounts[{j}].subPathExpr", "ECI has no subPathExpr"))
    if c.terminationMessagePolicy == "FallbackToLogsOnError":
        found.append((f"{p}.terminationMessagePolicy", "ECI's TerminationMessagePolicy is a notification queue, "
                                                       "not a log fallback"))
    found += _container_security(p, c)
    if init:
        return found
    if c.startupProbe:
        found.append((f"{p}.startupProbe", "ECI has no startup probes"))
    for key in ("readinessProbe", "livenessProbe"):
        if getattr(c, key):
            found += _probe(f"{p}.{key}", getattr(c, key))
    for key in ("postStart", "preStop"):
        if c.lifecycle and getattr(c.lifecycle, key) and getattr(c.lifecycle, key).sleep:
            found.append((f"{p}.lifecycle.{key}.sleep", "ECI hooks are exec, httpGet or tcpSocket"))
    return found


def _container_security(p: str, c: Container) -> Found:
    sc = c.securityContext
    if sc is None:
        return []
    found: Found = []
    for cap in (sc.capabilities.add or []) if sc.capabilities else []:
        if cap_name(cap) not in ECI_CAPABILITIES + DEFAULT_CAPABILITIES:
            found.append((f"{p}.securityContext.capabilities.add", f"ECI adds only {', '.join(ECI_CAPABILITIES)}"))
            break
    if sc.capabilities and sc.capabilities.drop:
        found.append((f"{p}.securityContext.capabilities.drop", "ECI cannot drop capabilities"))
    if sc.allowPrivilegeEscalation is False:
        found.append((f"{p}.securityContext.allowPrivilegeEscalation", "ECI cannot set no_new_privs"))
    for key in ("seccompProfile", "appArmorProfile"):
        if getattr(sc, key) is not None:
            found.append((f"{p}.securityContext.{key}", "ECI has no parameter for it"))
    return found


def _probe(p: str, probe: Probe) -> Found:
    found: Found = []
    if probe.grpc:
        found.append((f"{p}.grpc", "ECI probes are exec, httpGet or tcpSocket"))
    if probe.httpGet and probe.httpGet.httpHeaders:
        found.append((f"{p}.httpGet.httpHeaders", "ECI probes send no headers"))
    for action in ("httpGet", "tcpSocket"):
        if getattr(probe, action) and getattr(probe, action).host:
            found.append((f"{p}.{action}.host", "ECI probes take no host"))
    if (probe.successThreshold or 1) != 1:
        found.append((f"{p}.successThreshold", "ECI takes only 1"))
    if probe.terminationGracePeriodSeconds is not None:
        found.append((f"{p}.terminationGracePeriodSeconds", "ECI has no per-probe grace period"))
    return found


def _init_only(p: str, c: Container, spec: PodSpec) -> Found:
    """ECI's InitContainer has no probes, hooks, terminal, restart policy (sidecars), group
    or runAsNonRoot."""
    found: Found = [(f"{p}.{key}", "ECI's init containers have no such parameter")
                    for key in ("restartPolicy", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
                                "tty", "stdin") if getattr(c, key)]
    sc, psc = c.securityContext, spec.securityContext
    for key in ("runAsGroup", "runAsNonRoot"):
        own = getattr(sc, key) if sc else None
        value = own if own is not None else (getattr(psc, key) if psc else None)
        if value is not None and value is not False:
            where = f"{p}.securityContext.{key}" if own is not None else f"spec.securityContext.{key}"
            found.append((where, "ECI's init containers have no such parameter"))
    return found
