"""Container environments as the kubelet builds them (pure functions).

Secrets and ConfigMaps live in the tenant cluster, which the sandbox cannot reach, so
their values are resolved here into literal values. Order, precedence, `$(VAR)`
expansion and error messages follow the kubelet (pkg/kubelet/kubelet_pods.go).
"""
from __future__ import annotations

import base64
import math
import re
from typing import Callable, Mapping

from ...quantity import parse

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_IN_MAP = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
# Only known once the sandbox exists: left as fieldRef for the provider to fill in.
LATE_FIELDS = ("status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")


class ConfigError(Exception):
    """The container cannot get its configuration (yet): CreateContainerConfigError."""

    reason = "CreateContainerConfigError"


def referenced_sources(pod: dict) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps the containers' environments read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            src = e.get("valueFrom") or {}
            if src.get("secretKeyRef"):
                secrets.add(src["secretKeyRef"]["name"])
            if src.get("configMapKeyRef"):
                configmaps.add(src["configMapKeyRef"]["name"])
        for ef in c.get("envFrom") or []:
            if ef.get("secretRef"):
                secrets.add(ef["secretRef"]["name"])
            if ef.get("configMapRef"):
                configmaps.add(ef["configMapRef"]["name"])
    return secrets, configmaps


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown variables stay as written."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    name = text[i + 2:end]
                    val = lookup(name)
                    out.append(val if val is not None else f"$({name})")
                    i = end + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _secret_value(secret: dict, key: str) -> str | None:
    data = secret.get("data") or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode("utf-8", errors="replace")


def _field_value(pod: dict, path: str, node_name: str) -> str | None:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "",
    }
    if path in simple:
        return simple[path] or ""
    m = _FIELD_IN_MAP.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    return None


def _resource_value(pod: dict, container: dict, ref: dict, allocatable: Mapping[str, str | int]) -> str:
    name = ref.get("containerName") or container["name"]
    spec = pod.get("spec") or {}
    target = next((c for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
                   if c["name"] == name), None)
    if target is None:
        raise ConfigError(f"container {name!r} not found in pod for resourceFieldRef")
    kind, _, resource = ref["resource"].partition(".")
    res = (target.get("resources") or {})
    value = (res.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (res.get("limits") or {}).get(resource)
    if value is None:
        # The kubelet exposes node allocatable when no limit is set.
        value = allocatable.get(resource, 0) if kind == "limits" else 0
    divisor = parse(ref.get("divisor") or "1")
    if divisor <= 0:
        raise ConfigError(f"invalid divisor {ref.get('divisor')!r} in resourceFieldRef")
    return str(math.ceil(parse(value) / divisor))


def resolve_env(pod: dict, container: dict, *, secrets: Mapping[str, dict | None],
                configmaps: Mapping[str, dict | None], node_name: str,
                allocatable: Mapping[str, str | int] | None = None) -> tuple[list[dict], list[str]]:
    """The container's environment with every value that can be known now made literal.

    `secrets`/`configmaps` map names to objects, or to None when they do not exist.
    Returns the env list and, per envFrom source with invalid variable names, the kubelet's message.
    Raises ConfigError with the kubelet's message when a required value is missing.
    """
    ns = (pod.get("metadata") or {}).get("namespace", "")
    allocatable = allocatable or {}
    values: dict[str, str] = {}
    late: dict[str, dict] = {}  # name -> fieldRef source, resolved by the provider
    skipped: list[str] = []

    def set_value(name: str, value: str) -> None:
        late.pop(name, None)
        values.pop(name, None)  # re-insert: the last definition decides the position too
        values[name] = value

    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix") or ""
        if ef.get("configMapRef"):
            ref = ef["configMapRef"]
            cm = configmaps.get(ref["name"])
            if cm is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref["name"]}" not found')
            data = dict(cm.get("data") or {})
            source = f"configMap {ns}/{ref['name']}"
        elif ef.get("secretRef"):
            ref = ef["secretRef"]
            sec = secrets.get(ref["name"])
            if sec is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref["name"]}" not found')
            data = {k: _secret_value(sec, k) or "" for k in sec.get("data") or {}}
            source = f"secret {ns}/{ref['name']}"
        else:
            continue
        invalid = []
        for k in sorted(data):
            name = prefix + k
            if not _ENV_NAME.match(name):
                invalid.append(name)
                continue
            set_value(name, data[k])
        if invalid:
            skipped.append(f"Keys [{', '.join(invalid)}] from the EnvFrom {source} were skipped since they are "
                           "considered invalid environment variable names.")

    def lookup(name: str) -> str | None:
        return values.get(name)

    for e in container.get("env") or []:
        name = e["name"]
        src = e.get("valueFrom")
        if not src:
            set_value(name, expand(e.get("value") or "", lookup))
            continue
        if src.get("secretKeyRef"):
            ref = src["secretKeyRef"]
            sec = secrets.get(ref["name"])
            if sec is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref["name"]}" not found')
            val = _secret_value(sec, ref["key"])
            if val is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}")
            set_value(name, val)
        elif src.get("configMapKeyRef"):
            ref = src["configMapKeyRef"]
            cm = configmaps.get(ref["name"])
            if cm is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref["name"]}" not found')
            data = cm.get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {ref['key']} in ConfigMap {ns}/{ref['name']}")
            set_value(name, data[ref["key"]])
        elif src.get("fieldRef"):
            path = src["fieldRef"]["fieldPath"]
            val = _field_value(pod, path, node_name)
            if val is not None:
                set_value(name, val)
            elif path in LATE_FIELDS:
                values.pop(name, None)
                late[name] = {"fieldRef": {"fieldPath": path}}
            else:
                raise ConfigError(f"unsupported fieldPath: {path}")
        elif src.get("resourceFieldRef"):
            set_value(name, _resource_value(pod, container, src["resourceFieldRef"], allocatable))

    env = [{"name": k, "value": v} for k, v in values.items()]
    env += [{"name": k, "valueFrom": v} for k, v in late.items()]
    return env, skipped


def expand_command(items: list[str] | None, env: list[dict]) -> list[str] | None:
    """`$(VAR)` in command and args refer to the container's environment."""
    if items is None:
        return None
    values = {e["name"]: e["value"] for e in env if "value" in e}
    return [expand(s, values.get) for s in items]
