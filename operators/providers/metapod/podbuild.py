"""Pure builders: a SandboxPod -> its Pod in the meta-cluster (`build_pod`), and the Secret
holding the files of its ConfigMap, Secret, downward API and projected volumes
(`build_files_secret`).

The Pod is the tenant's pod as far as the meta kubelet can run it without the tenant
reaching the node or the meta-cluster (refusals.py refuses the rest, by name, before
anything is built):

- no service-account token (`automountServiceAccountToken: false`), no meta Services in
  the environment (`enableServiceLinks: false`), no host network, PID or IPC namespace, no
  hostPath (the model has none; volumes are emptyDir or this Secret), no hostPort;
- seccomp RuntimeDefault for every container (the kubelet's SeccompDefault, as the local
  provider's), the RuntimeClass the operator is configured with (gVisor, Kata) if any;
- its name is `sk8s-<uid>` in the SandboxPod's namespace; owned by the SandboxPod
  (controller, as kopf.adopt makes it) so that deleting the SandboxPod deletes it; it
  carries the labels naming the installation, the sandbox and the tenant cluster, and is
  spread softly over the nodes per tenant cluster (topologySpreadConstraints on
  kubernetes.io/hostname, ScheduleAnyway);
- DNS: never the meta-cluster's. ClusterFirst is the configured tenants' resolvers (None
  with them), or else the node's resolver (Default), with the search path and options of
  the SandboxPod; Default and None as given;
- content volumes: a `secret` volume of the files Secret with one item per file (its mode
  kept); a volume with no file (an optional source absent) is an empty, read-only downward
  API volume: a secret volume without items would show every file of the Secret.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from ... import API_VERSION
from ...models.contracts import (ANNOTATION_SANDBOX_NAME, LABEL_CLUSTER, LABEL_CLUSTER_UID, LABEL_HOME,
                                 LABEL_PROVIDER, LABEL_SANDBOX_NAME, LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_UID)
from ...models.podspec import PodSpec
from ...models.volumes import Volume
from ..lifecycle import VolumeContent
from ..sandbox import SandboxRef
from ...config import METAPOD_POD_CIDRS, METAPOD_PRIVATE_CIDRS, PLANE_NAMESPACE
from .containers import build_container
from .refusals import refusal, unsupported

PROVIDER = "metapod"
ANNOTATION_NAME = ANNOTATION_SANDBOX_NAME  # the SandboxPod's name, which may be too long for a label
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class MetaPlacement:
    """How this installation's sandbox Pods run (config.metapod_settings)."""

    home_id: str
    runtime_class: str | None = None
    name_servers: tuple[str, ...] = ()
    # The fence around each tenant's sandbox namespace (netpol.py; config.metapod_network_settings).
    private_cidrs: tuple[str, ...] = tuple(METAPOD_PRIVATE_CIDRS.split(","))
    pod_cidrs: tuple[str, ...] = tuple(METAPOD_POD_CIDRS.split(","))
    plane_namespace: str = PLANE_NAMESPACE


def files_secret_name(ref: SandboxRef) -> str:
    return f"{ref.instance_name}-files"


def file_key(volume: str, path: str) -> str:
    """A Secret key for one file (keys are [-._a-zA-Z0-9]+; paths may hold '/')."""
    return "f-" + hashlib.sha256(f"{volume}\0{path}".encode()).hexdigest()[:40]


def refuse(spec: PodSpec) -> None:
    found = unsupported(spec)
    if found:
        raise refusal(found)


def owner_reference(ref: SandboxRef) -> dict:
    """The SandboxPod as controller. blockOwnerDeletion false: the operator's finalizer
    deletes the Pod first anyway, and true would need rights on sandboxpods/finalizers where
    the OwnerReferencesPermissionEnforcement admission plugin runs."""
    return {"apiVersion": API_VERSION, "kind": "SandboxPod", "name": ref.name, "uid": ref.uid,
            "controller": True, "blockOwnerDeletion": False}


def sandbox_labels(ref: SandboxRef, labels: dict[str, str], home_id: str) -> dict[str, str]:
    out = {LABEL_HOME: home_id, LABEL_PROVIDER: PROVIDER, LABEL_SANDBOX_UID: ref.uid,
           LABEL_SANDBOX_NAMESPACE: ref.namespace}
    for key, value in ((LABEL_SANDBOX_NAME, ref.name), (LABEL_CLUSTER, labels.get(LABEL_CLUSTER)),
                       (LABEL_CLUSTER_UID, labels.get(LABEL_CLUSTER_UID))):
        if value and len(value) <= 63 and _LABEL_VALUE.match(value):
            out[key] = value
    return out


def build_pod(ref: SandboxRef, spec: PodSpec, labels: dict[str, str], placement: MetaPlacement,
              content: VolumeContent | None = None) -> dict:
    """The whole Pod manifest; raises InvalidSpecError naming every field it cannot honour."""
    refuse(spec)
    meta = {"name": ref.instance_name, "namespace": ref.namespace,
            "labels": sandbox_labels(ref, labels, placement.home_id),
            "annotations": {ANNOTATION_NAME: ref.name}, "ownerReferences": [owner_reference(ref)]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": build_pod_spec(ref, spec, labels, placement, content or {})}


def build_pod_spec(ref: SandboxRef, spec: PodSpec, labels: dict[str, str], placement: MetaPlacement,
                   content: VolumeContent) -> dict:
    out: dict = {
        "automountServiceAccountToken": False, "enableServiceLinks": False,
        "hostNetwork": False, "hostPID": False, "hostIPC": False,
        "restartPolicy": spec.restartPolicy or "Always",
        "terminationGracePeriodSeconds": 30 if spec.terminationGracePeriodSeconds is None
        else spec.terminationGracePeriodSeconds,
        "securityContext": pod_security(spec),
        "containers": [build_container(c, spec, ref) for c in spec.containers],
    }
    if spec.initContainers:
        out["initContainers"] = [build_container(c, spec, ref) for c in spec.initContainers]
    if spec.volumes:
        out["volumes"] = [build_volume(v, ref, content) for v in spec.volumes]
    hostname = spec.hostname or _hostname(ref.name)
    if hostname:
        out["hostname"] = hostname
    for key in ("activeDeadlineSeconds", "shareProcessNamespace"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    if spec.hostAliases:
        out["hostAliases"] = [a.to_wire() for a in spec.hostAliases]
    out.update(build_dns(spec, placement))
    if placement.runtime_class:
        out["runtimeClassName"] = placement.runtime_class
    cluster_uid = labels.get(LABEL_CLUSTER_UID)
    if cluster_uid and LABEL_CLUSTER_UID in sandbox_labels(ref, labels, placement.home_id):
        out["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": HOSTNAME_TOPOLOGY, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {LABEL_CLUSTER_UID: cluster_uid, LABEL_PROVIDER: PROVIDER}}}]
    return out


def _hostname(name: str) -> str | None:
    """The kubelet's default: the pod's name, cut to a DNS label; none if it is no label
    even so (the model's hostname is always set by the virtual node)."""
    cut = name[:63].rstrip("-.")
    return cut if re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", cut) else None


def pod_security(spec: PodSpec) -> dict:
    psc = spec.securityContext
    out = psc.to_wire() if psc is not None else {}
    out["seccompProfile"] = {"type": "RuntimeDefault"}  # the only one the models let through
    return out


def build_dns(spec: PodSpec, placement: MetaPlacement) -> dict:
    policy = spec.dnsPolicy or "ClusterFirst"
    cfg = spec.dnsConfig.to_wire() if spec.dnsConfig else {}
    if policy == "ClusterFirst":
        if placement.name_servers:
            policy = "None"
            cfg = {**cfg, "nameservers": list(placement.name_servers)[:3]}
        else:
            policy = "Default"
    return {"dnsPolicy": policy, **({"dnsConfig": cfg} if cfg else {})}


def build_volume(v: Volume, ref: SandboxRef, content: VolumeContent) -> dict:
    if v.emptyDir is not None:
        return {"name": v.name, "emptyDir": v.emptyDir.to_wire()}
    if v.has_content:
        files = content.get(v.name) or {}
        if not files:
            return {"name": v.name, "downwardAPI": {"items": []}}
        items = [{"key": file_key(v.name, path), "path": path, "mode": mode}
                 for path, (_, mode) in sorted(files.items())]
        return {"name": v.name, "secret": {"secretName": files_secret_name(ref), "items": items}}
    raise AssertionError(f"volume {v.name}: refused before building (refusals.unsupported)")


def build_files_secret(ref: SandboxRef, content: VolumeContent, labels: dict[str, str], home_id: str) -> dict:
    """The Secret the content volumes mount, owned by the SandboxPod like its Pod."""
    data = {file_key(vol, path): base64.b64encode(raw).decode()
            for vol, files in content.items() for path, (raw, _) in files.items()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": files_secret_name(ref), "namespace": ref.namespace,
                         "labels": sandbox_labels(ref, labels, home_id),
                         "annotations": {ANNOTATION_NAME: ref.name},
                         "ownerReferences": [owner_reference(ref)]},
            "data": data}


def file_layout(content: VolumeContent) -> dict[str, list[tuple[str, int]]]:
    """Each content volume's (path, mode) list: what the Pod's items fix once made."""
    return {vol: sorted((path, mode) for path, (_, mode) in files.items()) for vol, files in content.items()}
