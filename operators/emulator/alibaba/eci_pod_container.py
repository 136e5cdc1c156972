"""One ECI container (`Container.N.*` or `InitContainer.N.*`, unflattened) -> the Kubernetes
container dict the local provider runs (pure): the inverse of the aliyun provider's
eci_container.py, read through eci_fields.Fields so that a parameter not read here is
refused by name.

Command is the entrypoint and Arg its arguments, as in Kubernetes. Cpu (cores) and Memory
(GiB) become the container's limits; a container that gives neither runs within the
group's size, as on ECI, where it may use the whole instance. The one FieldRef ECI
resolves, status.podIP, stays a fieldRef: the local provider fills it in once the pod has
its address (providers/local/podenv.py). Capabilities and sysctls are checked against what
a local sandbox may have, so that a refusal is the request's, not a group failing later.
"""
from __future__ import annotations

from typing import Any

from ...models.securitycontext import ADDABLE_CAPABILITIES
from ...providers.aliyun.eci_container import ECI_ENV_KEY
from .eci_fields import Fields
from .errors import invalid

GIB = 2**30
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP")
FIELD_PATHS = ("status.podIP",)  # the FieldRef.FieldPath values ECI resolves
PROBE_TIMES = ("InitialDelaySeconds", "PeriodSeconds", "TimeoutSeconds", "SuccessThreshold", "FailureThreshold")
HOOKS = (("PostStart", "postStart"), ("PreStop", "preStop"))


def cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def memory_quantity(gib: float) -> str:
    return str(round(gib * GIB))


def container_from(f: Fields, *, init: bool, size: tuple[float | None, float | None]) -> dict[str, Any]:
    """`size`: the group's (cores, GiB), the limits of a container that names none."""
    c: dict[str, Any] = {"name": f.text("Name"), "image": f.text("Image")}
    _put(c, "imagePullPolicy", f.choice("ImagePullPolicy", PULL_POLICIES))
    _put(c, "command", f.strings("Command"))
    _put(c, "args", f.strings("Arg"))
    _put(c, "workingDir", f.text("WorkingDir"))
    cpu, mem = f.number("Cpu"), f.number("Memory")
    if cpu is None and mem is None:
        cpu, mem = size
    limits = {k: v for k, v in (("cpu", cpu and cpu_quantity(cpu)), ("memory", mem and memory_quantity(mem))) if v}
    if limits:
        c["resources"] = {"limits": limits}
    _put(c, "env", [_env(e) for e in f.items("EnvironmentVar")] or None)
    _put(c, "ports", [{"containerPort": x.integer("Port", 1, 65535), "protocol": x.choice("Protocol", PROTOCOLS)
                       or "TCP"} for x in f.items("Port")] or None)
    _put(c, "volumeMounts", [_mount(m) for m in f.items("VolumeMount")] or None)
    _put(c, "securityContext", _security(f, init=init))
    _put(c, "terminationMessagePath", f.text("TerminationMessagePath"))
    if init:
        return c
    _put(c, "tty", f.boolean("Tty"))
    _put(c, "stdin", f.boolean("Stdin"))
    for key, field in (("ReadinessProbe", "readinessProbe"), ("LivenessProbe", "livenessProbe")):
        probe = f.child(key)
        _put(c, field, probe and _probe(probe))
    lifecycle = {field: _hook(f, f"Lifecycle{key}Handler") for key, field in HOOKS}
    _put(c, "lifecycle", {k: v for k, v in lifecycle.items() if v} or None)
    return c


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def _env(e: Fields) -> dict[str, Any]:
    key = e.literal("Key") or ""
    if not ECI_ENV_KEY.match(key):
        raise invalid(e.name("Key"), "Letters, digits and '_', not starting with a digit, up to 128 characters.")
    out: dict[str, Any] = {"name": key}
    ref = e.child("FieldRef")
    value = e.literal("Value")  # "None" is a value here, not the SDK's unset
    if ref is not None:
        path = ref.text("FieldPath")
        if path not in FIELD_PATHS:
            raise invalid(ref.name("FieldPath"), f"ECI resolves only {', '.join(FIELD_PATHS)}.")
        if value is not None:
            raise invalid(e.name("Value"), "A variable takes a Value or a FieldRef, not both.")
        out["valueFrom"] = {"fieldRef": {"fieldPath": path}}
    else:
        out["value"] = value or ""
    return out


def _mount(m: Fields) -> dict[str, Any]:
    out = {"name": m.text("Name"), "mountPath": m.text("MountPath"), "readOnly": bool(m.boolean("ReadOnly"))}
    _put(out, "subPath", m.text("SubPath"))
    return out


def _probe(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    http, tcp, ex = f.child("HttpGet"), f.child("TcpSocket"), f.child("Exec")
    if sum(x is not None for x in (http, tcp, ex)) != 1:
        raise invalid(f.path.rstrip("."), "A probe has exactly one of HttpGet, TcpSocket and Exec.")
    if http is not None:
        out["httpGet"] = {"path": http.text("Path") or "/", "port": http.integer("Port", 1, 65535),
                          "scheme": http.choice("Scheme", ("HTTP", "HTTPS")) or "HTTP"}
    elif tcp is not None:
        out["tcpSocket"] = {"port": tcp.integer("Port", 1, 65535)}
    else:
        out["exec"] = {"command": ex.strings("Command") or []}
    for key in PROBE_TIMES:
        value = f.integer(key, low=0 if key == "InitialDelaySeconds" else 1)
        if value is not None:
            out[key[0].lower() + key[1:]] = value
    return out


def _hook(f: Fields, key: str) -> dict[str, Any] | None:
    """ECI spells a hook's fields straight after its name: LifecyclePreStopHandlerHttpGetPath."""
    command = f.strings(f"{key}Exec")
    path, port = f.text(f"{key}HttpGetPath"), f.integer(f"{key}HttpGetPort", 1, 65535)
    scheme, host = f.choice(f"{key}HttpGetScheme", ("HTTP", "HTTPS")), f.text(f"{key}HttpGetHost")
    headers = [{"name": h.text("Name"), "value": h.text("Value") or ""} for h in f.items(f"{key}HttpGetHttpHeader")]
    http = port is not None or path is not None or scheme is not None or host is not None or headers
    if command is not None and http:
        raise invalid(f.name(key), "A hook has one action: Exec or HttpGet.")
    if command is not None:
        return {"exec": {"command": command}}
    if not http:
        return None
    if port is None:
        raise invalid(f.name(f"{key}HttpGetPort"), "An HttpGet hook needs a port.")
    get: dict[str, Any] = {"path": path or "/", "port": port, "scheme": scheme or "HTTP"}
    _put(get, "host", host)
    _put(get, "httpHeaders", headers or None)
    return {"httpGet": get}


def _security(f: Fields, *, init: bool) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    sc = f.child("SecurityContext")
    if sc is not None:
        _put(out, "runAsUser", sc.integer("RunAsUser", low=0))
        _put(out, "readOnlyRootFilesystem", sc.boolean("ReadOnlyRootFilesystem"))
        cap = sc.child("Capability")
        adds = (cap.strings("Add") or []) if cap is not None else []
        for j, name in enumerate(adds, 1):
            if name.upper().removeprefix("CAP_") not in ADDABLE_CAPABILITIES:
                raise invalid(f"{cap.name('Add')}.{j}", f"{name} cannot be added in a local sandbox.")
        if adds:
            out["capabilities"] = {"add": adds}
    if not init:  # ECI's InitContainer has neither: left unread, they are refused by name
        _put(out, "runAsGroup", f.integer("SecurityContextRunAsGroup", low=0))
        _put(out, "runAsNonRoot", f.boolean("SecurityContextRunAsNonRoot"))
    return out or None
