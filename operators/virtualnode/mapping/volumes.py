"""Pod volumes as the virtual node hands them to a sandbox (pure functions, no I/O).

ConfigMaps and Secrets live in the tenant cluster, which sandboxes cannot reach. So the
virtual node computes the files of every ConfigMap, Secret and downward API volume as
the kubelet would (items, modes, label/annotation formats, error messages of
pkg/volume/{configmap,secret,downwardapi}) and writes them into one Secret per pod in
the meta-cluster, the pod's *volume content*, named like its SandboxPod and owned by it.
The SandboxPod spec only references the volumes; when a source changes, the content
Secret is rewritten and the provider swaps the files in place (kubelet's AtomicWriter).
Service-account tokens of projected volumes take the same way (satokens.py), so that a
refreshed token reaches a running pod as an updated ConfigMap does.
"""
from __future__ import annotations

import base64
import json
from typing import Mapping

from .envresolve import ConfigError, _field_value, _resource_value
from .satokens import token_mode
from .trustbundles import trust_anchors

SUPPORTED = ("emptyDir", "configMap", "secret", "downwardAPI", "nfs", "projected")
CONTENT_SOURCES = ("configMap", "secret", "downwardAPI")
# A projection's token comes from the tenant's TokenRequest API (satokens.py), not from an object.
# A ClusterTrustBundle's certificates come from the tenant's certificates.k8s.io API (trustbundles.py).
PROJECTED_SOURCES = CONTENT_SOURCES + ("serviceAccountToken", "clusterTrustBundle")
DEFAULT_MODE = 0o644
# Only what a downward API *volume* may show (status fields are env-only upstream).
_DOWNWARD_FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                    "metadata.annotations")


class VolumeError(ConfigError):
    """A volume cannot be set up (yet): the pod stays ContainerCreating, with a FailedMount event."""

    reason = "FailedMount"

    def __init__(self, volume: str, message: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


def volume_type(volume: dict) -> str | None:
    kind = next((k for k in volume if k != "name"), None)
    if kind == "projected" and not all(set(src) <= set(PROJECTED_SOURCES)
                                       for src in (volume["projected"] or {}).get("sources") or []):
        return "projected (podCertificate, ...)"  # not something a sandbox gets
    return kind


def sandbox_volumes(pod: dict) -> list[dict]:
    """The pod's volumes a sandbox runs, as the tenant wrote them (types refused at admission
    are not sent). Token sources stay out of the spec: their files come with the content."""
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        kind = volume_type(v)
        if kind in SUPPORTED:
            src = dict(v[kind] or {})
            if kind == "projected" and src.get("sources"):
                src["sources"] = [s for s in src["sources"] if s.get("serviceAccountToken") is None
                                  and s.get("clusterTrustBundle") is None]
            out.append({"name": v["name"], kind: src})
    return out


def sandbox_mounts(container: dict, volumes: set[str]) -> list[dict]:
    out = []
    for m in container.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            continue
        mount = {"name": m["name"], "mountPath": m["mountPath"]}
        if m.get("readOnly"):
            mount["readOnly"] = True
        if m.get("subPath"):
            mount["subPath"] = m["subPath"]
        if m.get("subPathExpr"):  # expanded by the sandbox's kubelet, from the container's env
            mount["subPathExpr"] = m["subPathExpr"]
        out.append(mount)
    return out


def referenced_volume_sources(pod: dict) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps the pod's volumes read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("secret"):
            secrets.add(v["secret"]["secretName"])
        if v.get("configMap"):
            configmaps.add(v["configMap"]["name"])
        for src in (v.get("projected") or {}).get("sources") or [] if volume_type(v) == "projected" else []:
            if src.get("secret"):
                secrets.add(src["secret"]["name"])
            if src.get("configMap"):
                configmaps.add(src["configMap"]["name"])
    return secrets, configmaps


def _file(data: bytes, mode: int | None, default: int | None) -> dict:
    m = mode if mode is not None else (default if default is not None else DEFAULT_MODE)
    return {"mode": m, "data": base64.b64encode(data).decode()}


def _keyed_payload(volume: str, src: dict, values: dict[str, bytes], *, missing: str) -> dict[str, dict]:
    items = src.get("items")
    default = src.get("defaultMode")
    if not items:
        return {k: _file(v, None, default) for k, v in values.items()}
    out = {}
    for item in items:
        if item["key"] not in values:
            if src.get("optional"):
                continue
            raise VolumeError(volume, f"{missing}: {item['key']}")
        out[item["path"]] = _file(values[item["key"]], item.get("mode"), default)
    return out


def configmap_payload(volume: str, src: dict, cm: dict | None) -> dict[str, dict]:
    if cm is None:
        if src.get("optional"):
            return {}
        raise VolumeError(volume, f'configmap "{src["name"]}" not found')
    values = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    values.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return _keyed_payload(volume, src, values, missing="configmap references non-existent config key")


def secret_payload(volume: str, src: dict, secret: dict | None) -> dict[str, dict]:
    if secret is None:
        if src.get("optional"):
            return {}
        raise VolumeError(volume, f'secret "{src["secretName"]}" not found')
    values = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return _keyed_payload(volume, src, values, missing="references non-existent secret key")


def format_map(m: Mapping[str, str]) -> str:
    """Labels and annotations as the kubelet writes them: sorted `key="value"` lines."""
    return "\n".join(f"{k}={json.dumps(m[k], ensure_ascii=False)}" for k in sorted(m))


def downward_payload(volume: str, src: dict, pod: dict, *, node_name: str,
                     allocatable: Mapping[str, str | int]) -> dict[str, dict]:
    meta = pod.get("metadata") or {}
    out = {}
    for item in src.get("items") or []:
        if item.get("fieldRef"):
            path = item["fieldRef"]["fieldPath"]
            if path in ("metadata.labels", "metadata.annotations"):
                value = format_map(meta.get(path.split(".")[1]) or {})
            elif path in _DOWNWARD_FIELDS or path.startswith(("metadata.labels[", "metadata.annotations[")):
                value = _field_value(pod, path, node_name) or ""
            else:
                raise VolumeError(volume, f"unsupported fieldPath: {path}")
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            try:
                value = _resource_value(pod, {"name": ref.get("containerName") or ""}, ref, allocatable)
            except ConfigError as err:
                raise VolumeError(volume, str(err)) from err
        else:
            continue
        out[item["path"]] = _file(value.encode(), item.get("mode"), src.get("defaultMode"))
    return out


def volume_content(pod: dict, *, secrets: Mapping[str, dict | None], configmaps: Mapping[str, dict | None],
                   node_name: str, allocatable: Mapping[str, str | int] | None = None,
                   tokens: Mapping[tuple[str, int], str] | None = None,
                   trust_bundles: list[dict] | None = None) -> dict[str, dict]:
    """Volume name -> {relative path: {mode, data (base64)}} for every content volume;
    `tokens` holds the service-account token of each (volume, source index),
    `trust_bundles` the cluster's ClusterTrustBundles (read only for pods that project one)."""
    allocatable = allocatable or {}
    tokens = tokens or {}
    out: dict[str, dict] = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        name = v["name"]
        if v.get("configMap"):
            out[name] = configmap_payload(name, v["configMap"], configmaps.get(v["configMap"]["name"]))
        elif v.get("secret"):
            out[name] = secret_payload(name, v["secret"], secrets.get(v["secret"]["secretName"]))
        elif v.get("downwardAPI") is not None:
            out[name] = downward_payload(name, v["downwardAPI"], pod, node_name=node_name, allocatable=allocatable)
        elif v.get("projected") is not None and volume_type(v) == "projected":
            out[name] = projected_payload(name, v["projected"], pod, secrets=secrets, configmaps=configmaps,
                                          node_name=node_name, allocatable=allocatable, tokens=tokens,
                                          trust_bundles=trust_bundles or [])
    return out


def projected_payload(volume: str, src: dict, pod: dict, *, secrets: Mapping[str, dict | None],
                      configmaps: Mapping[str, dict | None], node_name: str,
                      allocatable: Mapping[str, str | int],
                      tokens: Mapping[tuple[str, int], str] | None = None,
                      trust_bundles: list[dict] | None = None) -> dict[str, dict]:
    """Every source's files in one directory; the volume's defaultMode for items without a mode."""
    mode = {"defaultMode": src.get("defaultMode")}
    out: dict[str, dict] = {}
    for i, p in enumerate(src.get("sources") or []):
        if p.get("configMap"):
            out.update(configmap_payload(volume, {**p["configMap"], **mode}, configmaps.get(p["configMap"]["name"])))
        elif p.get("secret"):
            ref = {**p["secret"], "secretName": p["secret"]["name"], **mode}
            out.update(secret_payload(volume, ref, secrets.get(p["secret"]["name"])))
        elif p.get("downwardAPI") is not None:
            out.update(downward_payload(volume, {**p["downwardAPI"], **mode}, pod, node_name=node_name,
                                        allocatable=allocatable))
        elif p.get("serviceAccountToken") is not None:
            token = (tokens or {}).get((volume, i))
            if token is None:
                raise VolumeError(volume, "failed to fetch token: not requested yet")
            out[p["serviceAccountToken"]["path"]] = _file(token.encode(), token_mode(pod, src), None)
        elif p.get("clusterTrustBundle") is not None:
            ctb = p["clusterTrustBundle"]
            try:
                data = trust_anchors(ctb, trust_bundles or [])
            except ValueError as err:
                raise VolumeError(volume, str(err)) from err
            out[ctb["path"]] = _file(data, None, src.get("defaultMode"))
    return out


def projects_trust_bundles(pod: dict) -> bool:
    return any(src.get("clusterTrustBundle") is not None for v in (pod.get("spec") or {}).get("volumes") or []
               for src in (v.get("projected") or {}).get("sources") or [])


def add_volumes(sb_spec: dict, pod: dict) -> dict:
    """Volumes and every container's (and init container's) mounts of them, onto a SandboxPod spec."""
    vols = sandbox_volumes(pod)
    if not vols:
        return sb_spec
    names = {v["name"] for v in vols}
    sb_spec["volumes"] = vols
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers"):
        src = {c["name"]: c for c in spec.get(key) or []}
        for c in sb_spec.get(key) or []:
            mounts = sandbox_mounts(src.get(c["name"]) or {}, names)
            if mounts:
                c["volumeMounts"] = mounts
    return sb_spec


def unsupported_volumes(pod: dict) -> list[str]:
    """Volumes a sandbox does not get (admission refuses them; this covers pods admitted before)."""
    return [v["name"] for v in (pod.get("spec") or {}).get("volumes") or [] if volume_type(v) not in SUPPORTED]
