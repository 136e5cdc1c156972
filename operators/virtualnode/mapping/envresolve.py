"""Container environments as the kubelet builds them (pure functions).

Secrets and ConfigMaps live in the tenant cluster, which the sandbox cannot reach, so
their values are resolved here into literal values. Order, precedence, `$(VAR)`
expansion and error messages follow the kubelet (pkg/kubelet/kubelet_pods.go).
"""
from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Mapping

from ...models.contracts import REASON_CONFIG_ERROR
from ...quantity import parse

# v1.37's kubelet takes every envFrom key (the API allows printable ASCII except "=" in
# names, and ConfigMap/Secret keys and prefixes are valid names). What the runtime cannot
# carry (an "=") is still skipped, with the kubelet's old event.
_ENV_NAME = re.compile(r"^[ -<>-~]+$")
_FIELD_IN_MAP = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
# Only known once the sandbox exists: left as fieldRef for the provider to fill in.
LATE_FIELDS = ("status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")


class ConfigError(Exception):
    """The container cannot get its configuration (yet): CreateContainerConfigError."""

    reason = REASON_CONFIG_ERROR


def referenced_sources(pod: dict) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps the containers' environments read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) + \
            (spec.get("ephemeralContainers") or []):
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
    return str(math.ceil(_units(parse(value), resource) / _units(_divisor(ref), resource)))


def _divisor(ref: dict) -> Decimal:
    """The divisor as the kubelet reads it: unset and zero both mean 1.

    The apiserver stores an unset divisor as the zero quantity ("0"), so every pod read
    back from the API carries "0" (pkg/api/v1/resource/helpers.go ExtractContainerResourceValue).
    """
    divisor = parse(ref.get("divisor") or 0)
    if divisor < 0:
        raise ConfigError(f"invalid divisor {ref.get('divisor')!r} in resourceFieldRef")
    return divisor or Decimal(1)


def _units(q: Decimal, resource: str) -> int:
    """A quantity in the kubelet's integer units, rounded up: millicores for cpu
    (Quantity.MilliValue), whole units otherwise (Quantity.Value)."""
    return math.ceil(q * 1000) if resource == "cpu" else math.ceil(q)


class _Environment:
    """The environment being built, in the kubelet's order: a later definition of a name
    replaces the earlier one and takes its position; late fieldRefs stay sources."""

    def __init__(self, services: Mapping[str, str] | None = None) -> None:
        self.values: dict[str, str] = {}
        self.services = services or {}   # service variables: seen by $(VAR), given by the provider
        self.late: dict[str, dict] = {}  # name -> fieldRef source, resolved by the provider
        self.skipped: list[str] = []     # kubelet messages on invalid envFrom names

    def set(self, name: str, value: str) -> None:
        self.late.pop(name, None)
        self.values.pop(name, None)  # re-insert: the last definition decides the position too
        self.values[name] = value

    def set_late(self, name: str, path: str) -> None:
        self.values.pop(name, None)
        self.late[name] = {"fieldRef": {"fieldPath": path}}

    def lookup(self, name: str) -> str | None:
        """As the kubelet's MappingFuncFor(tmpEnv, serviceEnv): the container's own first."""
        if name in self.values or name in self.late:
            return self.values.get(name)
        return self.services.get(name)

    def result(self) -> tuple[list[dict], list[str]]:
        env = [{"name": k, "value": v} for k, v in self.values.items()]
        env += [{"name": k, "valueFrom": v} for k, v in self.late.items()]
        return env, self.skipped


@dataclass(frozen=True)
class _Sources:
    """What values are read from: the pod's namespace, its Secrets and ConfigMaps (None: missing)."""
    pod: dict
    namespace: str
    secrets: Mapping[str, dict | None]
    configmaps: Mapping[str, dict | None]
    node_name: str
    allocatable: Mapping[str, str | int]


# --- envFrom -------------------------------------------------------------------------

def _config_map_env_source(ref: dict, src: _Sources) -> dict[str, str] | None:
    """envFrom configMapRef: every key; None when optional and missing."""
    cm = src.configmaps.get(ref["name"])
    if cm is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'configmap "{ref["name"]}" not found')
    return dict(cm.get("data") or {})


def _secret_env_source(ref: dict, src: _Sources) -> dict[str, str] | None:
    """envFrom secretRef: every key, decoded; None when optional and missing."""
    sec = src.secrets.get(ref["name"])
    if sec is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'secret "{ref["name"]}" not found')
    return {k: _secret_value(sec, k) or "" for k in sec.get("data") or {}}


def _add_env_from(env: _Environment, ef: dict, src: _Sources) -> None:
    if ef.get("configMapRef"):
        ref = ef["configMapRef"]
        data = _config_map_env_source(ref, src)
        source = f"configMap {src.namespace}/{ref['name']}"
    elif ef.get("secretRef"):
        ref = ef["secretRef"]
        data = _secret_env_source(ref, src)
        source = f"secret {src.namespace}/{ref['name']}"
    else:
        return
    if data is None:
        return
    prefix = ef.get("prefix") or ""
    invalid = []
    for k in sorted(data):
        name = prefix + k
        if not _ENV_NAME.match(name):
            invalid.append(name)
            continue
        env.set(name, data[k])
    if invalid:
        env.skipped.append(f"Keys [{', '.join(invalid)}] from the EnvFrom {source} were skipped since they are "
                           "considered invalid environment variable names.")


# --- env: one function per value source --------------------------------------------

def _secret_key_ref(ref: dict, src: _Sources) -> str | None:
    """None when optional and missing: the variable is left out."""
    sec = src.secrets.get(ref["name"])
    if sec is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'secret "{ref["name"]}" not found')
    val = _secret_value(sec, ref["key"])
    if val is None and not ref.get("optional"):
        raise ConfigError(f"couldn't find key {ref['key']} in Secret {src.namespace}/{ref['name']}")
    return val


def _config_map_key_ref(ref: dict, src: _Sources) -> str | None:
    """None when optional and missing: the variable is left out."""
    cm = src.configmaps.get(ref["name"])
    if cm is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'configmap "{ref["name"]}" not found')
    data = cm.get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in ConfigMap {src.namespace}/{ref['name']}")
    return data[ref["key"]]


def _field_ref(env: _Environment, name: str, path: str, src: _Sources) -> None:
    val = _field_value(src.pod, path, src.node_name)
    if val is not None:
        env.set(name, val)
    elif path in LATE_FIELDS:
        env.set_late(name, path)
    else:
        raise ConfigError(f"unsupported fieldPath: {path}")


def _add_env_var(env: _Environment, e: dict, container: dict, src: _Sources) -> None:
    name, ref = e["name"], e.get("valueFrom")
    if not ref:
        env.set(name, expand(e.get("value") or "", env.lookup))
        return
    if ref.get("secretKeyRef"):
        value = _secret_key_ref(ref["secretKeyRef"], src)
    elif ref.get("configMapKeyRef"):
        value = _config_map_key_ref(ref["configMapKeyRef"], src)
    elif ref.get("fieldRef"):
        _field_ref(env, name, ref["fieldRef"]["fieldPath"], src)
        return
    elif ref.get("resourceFieldRef"):
        value = _resource_value(src.pod, container, ref["resourceFieldRef"], src.allocatable)
    else:
        return
    if value is not None:
        env.set(name, value)


def resolve_env(pod: dict, container: dict, *, secrets: Mapping[str, dict | None],
                configmaps: Mapping[str, dict | None], node_name: str,
                allocatable: Mapping[str, str | int] | None = None,
                service_env: Mapping[str, str] | None = None) -> tuple[list[dict], list[str]]:
    """The container's environment with every value that can be known now made literal.

    `secrets`/`configmaps` map names to objects, or to None when they do not exist.
    Returns the env list and, per envFrom source with invalid variable names, the kubelet's message.
    Raises ConfigError with the kubelet's message when a required value is missing.
    `service_env` (serviceenv.py) is not in the result (the SandboxPod carries it once for
    all containers) but `$(VAR)` sees it, as the kubelet's expansion does.
    As the kubelet's makeEnvironmentVariables: envFrom first, then env, each value from its source.
    """
    src = _Sources(pod, (pod.get("metadata") or {}).get("namespace", ""), secrets, configmaps, node_name,
                   allocatable or {})
    env = _Environment(service_env)
    for ef in container.get("envFrom") or []:
        _add_env_from(env, ef, src)
    for e in container.get("env") or []:
        _add_env_var(env, e, container, src)
    return env.result()


def expand_command(items: list[str] | None, env: list[dict],
                   service_env: Mapping[str, str] | None = None) -> list[str] | None:
    """`$(VAR)` in command and args refer to the container's environment, service variables
    included (the kubelet expands them with the container's final environment)."""
    if items is None:
        return None
    own = {e["name"] for e in env}
    values = {k: v for k, v in (service_env or {}).items() if k not in own}
    values.update({e["name"]: e["value"] for e in env if "value" in e})
    return [expand(s, values.get) for s in items]
