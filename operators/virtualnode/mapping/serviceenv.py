"""Service environment variables as the kubelet sets them (pure functions).

pkg/kubelet/kubelet_pods.go getServiceEnvVarMap and pkg/kubelet/envvars/envvars.go
FromServices: every pod gets the `kubernetes` Service of the default namespace; with
`enableServiceLinks` (default true) also every Service of its own namespace that has a
ClusterIP (not headless, not ExternalName), under the docker-link names. Containers'
own variables take precedence (envresolve.py, and the provider skips the names a
container defines).
"""
from __future__ import annotations

from typing import Iterable

from ...models.contracts import MAX_SERVICE_ENV
from .envresolve import ConfigError

MASTER_SERVICES = ("kubernetes",)  # the kubelet's masterServices, from the default namespace


def _ip_set(svc: dict) -> bool:
    """v1helper.IsServiceIPSet: a ClusterIP that is neither empty nor "None"."""
    return ((svc.get("spec") or {}).get("clusterIP") or "None") != "None"


def env_name(text: str) -> str:
    return text.replace("-", "_").upper()


def _join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_vars(svc: dict) -> list[tuple[str, str]]:
    """One Service's variables, in the kubelet's order (FromServices + makeLinkVariables)."""
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    if not _ip_set(svc) or not ports:
        return []
    ip, prefix = spec["clusterIP"], env_name(svc["metadata"]["name"])
    out = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", str(ports[0]["port"]))]
    out += [(f"{prefix}_SERVICE_PORT_{env_name(p['name'])}", str(p["port"])) for p in ports if p.get("name")]
    for i, p in enumerate(ports):
        proto = p.get("protocol") or "TCP"
        url = f"{proto.lower()}://{_join_host_port(ip, p['port'])}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))  # docker special-cases the first port
        port_prefix = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
        out += [(port_prefix, url), (f"{port_prefix}_PROTO", proto.lower()), (f"{port_prefix}_PORT", str(p["port"])),
                (f"{port_prefix}_ADDR", ip)]
    return out


def service_env(services: Iterable[dict], namespace: str, enable_service_links: bool | None) -> dict[str, str]:
    """The variables of a pod in `namespace`: name -> value. `enable_service_links` None
    means true (the apiserver's default)."""
    links = enable_service_links is not False
    chosen: dict[str, dict] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        if not _ip_set(svc):
            continue
        name = meta.get("name", "")
        if meta.get("namespace") == "default" and name in MASTER_SERVICES:
            # Over a namesake of the pod's namespace (which of the two the kubelet keeps depends
            # on its cache's order): in-cluster clients read KUBERNETES_SERVICE_HOST.
            chosen[name] = svc
        elif meta.get("namespace") == namespace and links and name not in MASTER_SERVICES:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(service_vars(chosen[name]))
    return out


def service_env_of(services: Iterable[dict], pod: dict) -> dict[str, str]:
    """`service_env` of a pod; ConfigError when there are more than a SandboxPod carries
    (a namespace of well over a thousand Services), naming the way out."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    out = service_env(services, meta.get("namespace", ""), spec.get("enableServiceLinks"))
    if len(out) > MAX_SERVICE_ENV:
        raise ConfigError(f"the Services of namespace {meta.get('namespace')} make {len(out)} service environment "
                          f"variables, over the limit of {MAX_SERVICE_ENV}: set spec.enableServiceLinks: false")
    return out
