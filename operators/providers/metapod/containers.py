"""Pure builder: one SandboxPod container -> the container of its meta-cluster Pod.

Fields map one to one (core/v1 on both sides) but for what a tenant must not steer on the
node (refusals.py refuses it first) and these:

- env: the pod's service variables first, for the names the container leaves free, then
  its own (the local and aliyun providers' order); metadata fieldRefs are the SandboxPod's
  (filled in: the meta Pod's own name is `sk8s-<uid>`); the pod's address stays a fieldRef
  (the meta Pod's IP is the sandbox's), and the host's address is the pod's too, as on ECI:
  the node's address never reaches a tenant;
- probes and hooks: `host` never passed (refused unless empty);
- ports: containerPort, name and protocol only (no hostPort: not in the model, never set).
"""
from __future__ import annotations

from ...models.podspec import Container, EnvVar, LifecycleHandler, PodSpec, Probe
from ..sandbox import SandboxRef

LATE_TO_POD = {"status.hostIP": "status.podIP", "status.hostIPs": "status.podIPs"}
_PLAIN = ("name", "image", "command", "args", "workingDir", "imagePullPolicy", "tty", "stdin", "restartPolicy",
          "terminationMessagePath", "terminationMessagePolicy")
_SECURITY = ("runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
             "seccompProfile", "appArmorProfile", "procMount")
_TIMING = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
           "terminationGracePeriodSeconds")


def build_container(c: Container, spec: PodSpec, ref: SandboxRef) -> dict:
    out: dict = {k: getattr(c, k) for k in _PLAIN if getattr(c, k) is not None}
    env = build_env(c, spec, ref)
    if env:
        out["env"] = env
    if c.ports:
        out["ports"] = [{"containerPort": p.containerPort, "protocol": p.protocol or "TCP",
                         **({"name": p.name} if p.name else {})} for p in c.ports]
    if c.resources:
        res = {k: dict(v) for k, v in (("limits", c.resources.limits), ("requests", c.resources.requests)) if v}
        if res:
            out["resources"] = res
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if getattr(c, key):
            out[key] = build_probe(getattr(c, key))
    if c.lifecycle:
        hooks = {k: build_handler(getattr(c.lifecycle, k)) for k in ("postStart", "preStop")
                 if getattr(c.lifecycle, k)}
        if hooks:
            out["lifecycle"] = hooks
    if c.volumeMounts:
        out["volumeMounts"] = [m.to_wire() for m in c.volumeMounts]
    sc = build_security(c)
    if sc:
        out["securityContext"] = sc
    return out


def build_env(c: Container, spec: PodSpec, ref: SandboxRef) -> list[dict]:
    known = {"metadata.name": ref.name, "metadata.namespace": ref.namespace, "metadata.uid": ref.uid}
    own = {e.name for e in c.env or []}
    out = [{"name": e.name, "value": e.value} for e in spec.serviceEnv or [] if e.name not in own]
    for e in c.env or []:
        out.append(_env_var(e, known))
    return out


def _env_var(e: EnvVar, known: dict[str, str]) -> dict:
    src = e.valueFrom
    if src is None:
        return {"name": e.name, "value": e.value or ""}
    if src.fieldRef is not None:
        path = src.fieldRef.fieldPath
        if path in known:
            return {"name": e.name, "value": known[path]}
        return {"name": e.name, "valueFrom": {"fieldRef": {"fieldPath": LATE_TO_POD.get(path, path)}}}
    if src.resourceFieldRef is not None:  # the meta Pod's resources are the sandbox's
        return {"name": e.name, "valueFrom": {"resourceFieldRef": src.resourceFieldRef.to_wire()}}
    raise AssertionError(f"env {e.name}: refused before building (refusals.container_refusals)")


def _action(handler) -> dict:
    if handler.exec:
        return {"exec": {"command": list(handler.exec.command)}}
    if handler.httpGet:
        return {"httpGet": handler.httpGet.model_copy(update={"host": None}).to_wire()}
    if getattr(handler, "tcpSocket", None):
        return {"tcpSocket": {"port": handler.tcpSocket.port}}
    if getattr(handler, "grpc", None):
        return {"grpc": {k: v for k, v in (("port", handler.grpc.port), ("service", handler.grpc.service))
                         if v is not None}}
    if getattr(handler, "sleep", None):
        return {"sleep": {"seconds": handler.sleep.seconds}}
    raise AssertionError("a handler has exactly one action (the models' rule)")


def build_probe(probe: Probe) -> dict:
    """gRPC's `mode` (sk8s's TLS option) is not core/v1's: a meta kubelet probes in plaintext."""
    return {**_action(probe), **{k: getattr(probe, k) for k in _TIMING if getattr(probe, k) is not None}}


def build_handler(handler: LifecycleHandler) -> dict:
    return _action(handler)


def build_security(c: Container) -> dict:
    sc = c.securityContext
    if sc is None:
        return {}
    out = {k: v for k in _SECURITY if (v := getattr(sc, k)) is not None}
    out = {k: (v.to_wire() if hasattr(v, "to_wire") else v) for k, v in out.items()}
    if sc.privileged is False:
        out["privileged"] = False
    if sc.capabilities and (sc.capabilities.add or sc.capabilities.drop):
        out["capabilities"] = {k: list(v) for k, v in (("add", sc.capabilities.add), ("drop", sc.capabilities.drop))
                               if v}
    return out
