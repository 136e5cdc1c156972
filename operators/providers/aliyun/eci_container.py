"""One PodSpec container -> its `Container.N.*` / `InitContainer.N.*` parameters of ECI's
CreateContainerGroup (pure).

Keys are spelled as the ECI API reference (2018-08-08) spells them, including its
irregular ones (`LifecyclePostStartHandlerExec.M`, `SecurityContextRunAsGroup`). Values are
strings, passed by the SDK as query parameters (URL-encoded data, never syntax). What ECI
cannot express is listed by eci_unsupported.unsupported_fields and refused at admission; the
builder raises InvalidSpecError on it too, so that nothing is dropped on the way.
"""
from __future__ import annotations

import re

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container, LifecycleHandler, PodSpec, Probe
from ...models.securitycontext import DEFAULT_CAPABILITIES
from ..errors import InvalidSpecError
from ..podrules import pull_policy
from ..sandbox import SandboxRef
from .eci_resources import container_size, fmt

# ECI's EnvironmentVar.Key: 1-128 characters of [0-9a-zA-Z_], not starting with a digit.
ECI_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Capability.Add takes only these (API reference); NET_RAW needs a ticket to the cloud.
ECI_CAPABILITIES = ("NET_ADMIN", "NET_RAW")
# The one FieldRef ECI resolves itself. The pod's and the host's addresses are the same on
# ECI: each group is its own host, with one network interface.
ECI_FIELD_PATH = "status.podIP"
LATE_FIELDS = ("status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")


def _bad(c: Container, what: str) -> InvalidSpecError:
    return InvalidSpecError(f"container {c.name}: {what}", reason=REASON_CONFIG_ERROR)


def container_params(p: str, c: Container, spec: PodSpec, ref: SandboxRef, *, init: bool) -> dict[str, str]:
    """Every parameter of one container, each key starting with `p` ("Container.1.")."""
    out = {f"{p}Name": c.name, f"{p}Image": c.image, f"{p}ImagePullPolicy": pull_policy(c)}
    out.update(_listed(f"{p}Command", c.command))
    out.update(_listed(f"{p}Arg", c.args))
    if c.workingDir:
        out[f"{p}WorkingDir"] = c.workingDir
    cpu, mem = container_size(c)
    if cpu is not None:
        out[f"{p}Cpu"] = fmt(cpu)
    if mem is not None:
        out[f"{p}Memory"] = fmt(mem)
    out.update(env_params(p, c, ref, spec.serviceEnv))
    for j, port in enumerate(c.ports or [], 1):
        if port.protocol == "SCTP":
            raise _bad(c, f"ports[{j - 1}]: ECI has no SCTP ports")
        out[f"{p}Port.{j}.Port"] = str(port.containerPort)
        out[f"{p}Port.{j}.Protocol"] = port.protocol or "TCP"
    out.update(mount_params(p, c))
    out.update(security_params(p, c, spec, init=init))
    if c.terminationMessagePath:
        out[f"{p}TerminationMessagePath"] = c.terminationMessagePath
    if c.terminationMessagePolicy == "FallbackToLogsOnError":
        raise _bad(c, "terminationMessagePolicy: ECI has no FallbackToLogsOnError")
    if init:
        return out
    for flag, key in ((c.tty, "Tty"), (c.stdin, "Stdin")):
        if flag:
            out[f"{p}{key}"] = "true"
    for probe, key in ((c.readinessProbe, "ReadinessProbe"), (c.livenessProbe, "LivenessProbe")):
        if probe:
            out.update(probe_params(f"{p}{key}.", probe, c))
    if c.startupProbe:
        raise _bad(c, "startupProbe: ECI has no startup probes")
    if c.lifecycle:
        for handler, key in ((c.lifecycle.postStart, "PostStart"), (c.lifecycle.preStop, "PreStop")):
            if handler:
                out.update(lifecycle_params(f"{p}Lifecycle{key}Handler", handler, c))
    return out


def _listed(key: str, values: list[str] | None) -> dict[str, str]:
    return {f"{key}.{i}": v for i, v in enumerate(values or [], 1)}


def env_params(p: str, c: Container, ref: SandboxRef, service_env: list | None) -> dict[str, str]:
    """The service variables first, for the names the container leaves free (as the local
    provider does), then the container's own; metadata fieldRefs are filled in here, the
    pod's address is left to ECI (`FieldRef.FieldPath` status.podIP)."""
    known = {"metadata.name": ref.name, "metadata.namespace": ref.namespace, "metadata.uid": ref.uid}
    own = {e.name for e in c.env or []}
    pairs: list[tuple[str, str, bool]] = [(e.name, e.value, False) for e in service_env or [] if e.name not in own]
    for e in c.env or []:
        ref_path = e.valueFrom.fieldRef.fieldPath if e.valueFrom and e.valueFrom.fieldRef else None
        if e.valueFrom is None:
            pairs.append((e.name, e.value or "", False))
        elif ref_path in known:
            pairs.append((e.name, known[ref_path], False))
        elif ref_path in LATE_FIELDS:
            pairs.append((e.name, ECI_FIELD_PATH, True))
        else:
            raise _bad(c, f"env {e.name}: this valueFrom source is not supported on ECI")
    out = {}
    for j, (name, value, field) in enumerate(pairs, 1):
        if not ECI_ENV_KEY.match(name):
            raise _bad(c, f"env {name!r}: ECI takes only names of letters, digits and '_', not starting with a "
                          "digit, up to 128 characters")
        out[f"{p}EnvironmentVar.{j}.Key"] = name
        out[f"{p}EnvironmentVar.{j}.{'FieldRef.FieldPath' if field else 'Value'}"] = value
    return out


def mount_params(p: str, c: Container) -> dict[str, str]:
    out = {}
    for j, m in enumerate(c.volumeMounts or [], 1):
        if m.subPathExpr:
            raise _bad(c, f"volumeMounts[{j - 1}].subPathExpr: ECI has no subPathExpr")
        out[f"{p}VolumeMount.{j}.Name"] = m.name
        out[f"{p}VolumeMount.{j}.MountPath"] = m.mountPath
        out[f"{p}VolumeMount.{j}.ReadOnly"] = "true" if m.readOnly else "false"
        if m.subPath:
            out[f"{p}VolumeMount.{j}.SubPath"] = m.subPath
    return out


def probe_port(port: int | str, c: Container, where: str) -> str:
    """A probe's port as a number: ECI takes no port names."""
    if isinstance(port, int) or str(port).isdigit():
        return str(int(port))
    for cp in c.ports or []:
        if cp.name == port:
            return str(cp.containerPort)
    raise _bad(c, f"{where}: port {port!r} names no port of the container")


def probe_params(p: str, probe: Probe, c: Container) -> dict[str, str]:
    """`p` is "Container.N.ReadinessProbe." or "...LivenessProbe."."""
    where = p.rstrip(".").rsplit(".", 1)[-1]
    out = {}
    if probe.httpGet:
        if probe.httpGet.httpHeaders or probe.httpGet.host:
            raise _bad(c, f"{where}.httpGet: ECI probes send no headers and connect only to the pod")
        out[f"{p}HttpGet.Path"] = probe.httpGet.path or "/"
        out[f"{p}HttpGet.Port"] = probe_port(probe.httpGet.port, c, where)
        out[f"{p}HttpGet.Scheme"] = probe.httpGet.scheme or "HTTP"
    elif probe.tcpSocket:
        if probe.tcpSocket.host:
            raise _bad(c, f"{where}.tcpSocket.host: ECI probes connect only to the pod")
        out[f"{p}TcpSocket.Port"] = probe_port(probe.tcpSocket.port, c, where)
    elif probe.exec:
        out.update(_listed(f"{p}Exec.Command", probe.exec.command))
    else:
        raise _bad(c, f"{where}.grpc: ECI has no gRPC probes")
    if (probe.successThreshold or 1) != 1:
        raise _bad(c, f"{where}.successThreshold: ECI takes only 1")
    if probe.terminationGracePeriodSeconds is not None:
        raise _bad(c, f"{where}.terminationGracePeriodSeconds: ECI has no per-probe grace period")
    for key in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        value = getattr(probe, key)
        if value is not None:
            out[f"{p}{key[0].upper()}{key[1:]}"] = str(value)
    return out


def lifecycle_params(p: str, handler: LifecycleHandler, c: Container) -> dict[str, str]:
    """`p` is "Container.N.LifecyclePostStartHandler" or "...PreStopHandler": ECI spells
    the handler's fields straight after it, without a dot."""
    if handler.exec:
        return _listed(f"{p}Exec", handler.exec.command)
    if handler.httpGet:
        h = handler.httpGet
        out = {f"{p}HttpGetPath": h.path or "/", f"{p}HttpGetPort": probe_port(h.port, c, "lifecycle"),
               f"{p}HttpGetScheme": h.scheme or "HTTP"}
        if h.host:
            out[f"{p}HttpGetHost"] = h.host
        for j, header in enumerate(h.httpHeaders or [], 1):
            out[f"{p}HttpGetHttpHeader.{j}.Name"] = header.name
            out[f"{p}HttpGetHttpHeader.{j}.Value"] = header.value
        return out
    raise _bad(c, "lifecycle: ECI has no sleep handler")


def cap_name(cap: str) -> str:
    cap = cap.upper()
    return cap[4:] if cap.startswith("CAP_") else cap


def security_params(p: str, c: Container, spec: PodSpec, *, init: bool) -> dict[str, str]:
    """The container's securityContext over the pod's, as the kubelet merges them."""
    sc, psc = c.securityContext, spec.securityContext
    user = sc.runAsUser if sc and sc.runAsUser is not None else (psc.runAsUser if psc else None)
    group = sc.runAsGroup if sc and sc.runAsGroup is not None else (psc.runAsGroup if psc else None)
    non_root = sc.runAsNonRoot if sc and sc.runAsNonRoot is not None else (psc.runAsNonRoot if psc else None)
    out = {}
    if user is not None:
        out[f"{p}SecurityContext.RunAsUser"] = str(user)
    if group is not None or non_root:
        if init:  # ECI's InitContainer has neither
            raise _bad(c, "securityContext: ECI sets no group and no runAsNonRoot on init containers")
        if group is not None:
            out[f"{p}SecurityContextRunAsGroup"] = str(group)
        if non_root:
            out[f"{p}SecurityContextRunAsNonRoot"] = "true"
    if sc and sc.readOnlyRootFilesystem:
        out[f"{p}SecurityContext.ReadOnlyRootFilesystem"] = "true"
    adds = [cap_name(x) for x in (sc.capabilities.add or [])] if sc and sc.capabilities else []
    for cap in adds:
        if cap not in ECI_CAPABILITIES and cap not in DEFAULT_CAPABILITIES:
            raise _bad(c, f"securityContext.capabilities.add: ECI cannot add {cap}")
    for j, cap in enumerate([x for x in adds if x in ECI_CAPABILITIES], 1):
        out[f"{p}SecurityContext.Capability.Add.{j}"] = cap
    return out
