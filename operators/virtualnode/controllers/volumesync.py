"""Keeps each pod's volume-content Secret in the meta-cluster in step with its sources.

The tenant's ConfigMaps and Secrets are watched (one watch each, as a kubelet's Watch
change-detection strategy); a change queues the pods whose volumes read the object, and
their reconcile rewrites the content Secret, which the provider turns into an atomic swap
of the files in the sandbox. Downward API files follow the pod's own updates the same way,
and service-account tokens their refresh times (tokens.py): the pod is queued again when
one is due, for as long as the pod runs.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping

from ...volumecontent import build_content_secret, content_hash
from ...kubeclient.informer import Informer
from ...kubeclient.client import MERGE, ApiError, KubeClient
from ..mapping.satokens import token_sources
from ..mapping.spec import sandboxpod_name
from ..mapping.quota import is_terminal
from ..mapping.volumes import (VolumeError, projects_trust_bundles, referenced_volume_sources, volume_content,
                               volume_type)
from .tokens import RETRY_AFTER_FAILED_REFRESH, TokenManager

TRUST_BUNDLES = "/apis/certificates.k8s.io/v1/clustertrustbundles"

log = logging.getLogger(__name__)


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def has_content_volumes(pod: dict) -> bool:
    return any(volume_type(v) in ("configMap", "secret", "downwardAPI", "projected")
               for v in (pod.get("spec") or {}).get("volumes") or [])


class VolumeSync:
    def __init__(self, *, tenant: KubeClient, meta: KubeClient, configmaps: Informer, secrets: Informer,
                 meta_namespace: str, node_name: str, allocatable: dict[str, str], requeue: Callable[[str], None],
                 requeue_after: Callable[[str, float], None] | None = None, tokens: TokenManager | None = None,
                 nodes: Mapping[str, dict[str, str]] | None = None):
        self.tenant = tenant
        self.tokens = tokens or TokenManager(tenant)
        self.requeue_after = requeue_after or (lambda name, delay: None)
        self._uids: dict[str, str] = {}  # SandboxPod name -> uid of the pod whose tokens it holds
        self.meta = meta
        self.meta_namespace = meta_namespace
        self.node_name = node_name
        self.allocatable = allocatable
        self.nodes = dict(nodes or {node_name: allocatable})  # each Node's allocatable (podsync.py)
        self.requeue = requeue
        # Started by the VirtualNode, not awaited: until synced, sources are read directly.
        self.configmaps = configmaps
        self.secrets = secrets
        self.configmaps.handlers.append(self._on_source("configmap"))
        self.secrets.handlers.append(self._on_source("secret"))
        self.readers: dict[tuple[str, str, str], set[str]] = {}  # (kind, ns, name) -> SandboxPod names
        self._reads: dict[str, set[tuple[str, str, str]]] = {}
        self.written: dict[str, tuple[str, str | None]] = {}  # SandboxPod name -> (hash, owner uid)
        self.unowned: set[str] = set()

    # --- which pods read what ----------------------------------------------------------
    def track(self, name: str, pod: dict | None) -> None:
        for k in self._reads.pop(name, set()):
            self.readers.get(k, set()).discard(name)
        uid = self._uids.pop(name, None)
        if uid and (pod is None or pod["metadata"]["uid"] != uid):
            self.tokens.forget(uid)
        if pod is None:
            last = self.written.pop(name, None)
            if last and last[1] is None:
                self.unowned.add(name)  # written, but its SandboxPod never came: nothing collects it
            return
        ns = pod["metadata"]["namespace"]
        self._uids[name] = pod["metadata"]["uid"]
        secrets, configmaps = referenced_volume_sources(pod)
        reads = {("secret", ns, n) for n in secrets} | {("configmap", ns, n) for n in configmaps}
        self._reads[name] = reads
        for k in reads:
            self.readers.setdefault(k, set()).add(name)

    def _on_source(self, kind: str):
        def handler(event: str, obj: dict, old: dict | None) -> None:
            ns, name = _key(obj)
            for sbp in self.readers.get((kind, ns, name), ()):
                self.requeue(sbp)
        return handler

    # --- content -----------------------------------------------------------------------
    async def _get(self, informer: Informer, plural: str, ns: str, name: str) -> dict | None:
        if informer.synced.is_set():
            return informer.get((ns, name))
        return await self.tenant.get_or_none(f"/api/v1/namespaces/{ns}/{plural}/{name}")

    async def content(self, pod: dict) -> dict[str, dict] | None:
        """Files of the pod's content volumes; None without any. Raises VolumeError.
        With service-account tokens, the pod is queued again when the first is due."""
        if not has_content_volumes(pod):
            return None
        meta = pod["metadata"]
        ns = meta["namespace"]
        secret_names, cm_names = referenced_volume_sources(pod)
        secrets = {n: await self._get(self.secrets, "secrets", ns, n) for n in secret_names}
        configmaps = {n: await self._get(self.configmaps, "configmaps", ns, n) for n in cm_names}
        tokens, due = await self.tokens.tokens(pod)
        if due is not None:
            self.requeue_after(sandboxpod_name(ns, meta["name"]), due)
        allocatable = self.nodes.get((pod.get("spec") or {}).get("nodeName"), self.allocatable)
        return volume_content(pod, secrets=secrets, configmaps=configmaps, node_name=self.node_name,
                              allocatable=allocatable, tokens=tokens,
                              trust_bundles=await self._trust_bundles() if projects_trust_bundles(pod) else None)

    async def _trust_bundles(self) -> list[dict]:
        """The cluster's ClusterTrustBundles, read when a pod projects one (few pods do, and
        the kubelet's manager reads them afresh too)."""
        items, _ = await self.tenant.list_all(TRUST_BUNDLES, {})
        return items

    async def write(self, name: str, content: dict[str, dict], labels: dict[str, str],
                    owner: dict | None = None) -> None:
        """Create or update the content Secret; nothing if it already says the same."""
        digest = content_hash(content)
        owner_uid = owner["metadata"]["uid"] if owner else None
        if self.written.get(name) == (digest, owner_uid):
            return
        body = build_content_secret(name, self.meta_namespace, content, labels=labels, owner=owner)
        path = f"/api/v1/namespaces/{self.meta_namespace}/secrets"
        try:
            await self.meta.create(path, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            patch = {"metadata": {k: body["metadata"][k] for k in ("labels", "annotations", "ownerReferences")
                                  if k in body["metadata"]}, "data": body["data"]}
            await self.meta.patch(f"{path}/{name}", patch, MERGE)
        self.written[name] = (digest, owner_uid)

    async def sync(self, pod: dict, sbp: dict, emit: Callable[[str, str], None]) -> None:
        """Both exist: the content follows its sources. A source gone keeps the last files,
        as a kubelet keeps them, and says why. A finished pod's files are left as they are
        (nothing runs to read them; its tokens are no longer refreshed)."""
        if is_terminal(pod):
            return
        try:
            content = await self.content(pod)
        except VolumeError as err:
            emit("FailedMount", str(err))
            if err.volume in {ts.volume for ts in token_sources(pod)}:
                # No source object's event would bring the pod back: try again.
                self.requeue_after(sbp["metadata"]["name"], RETRY_AFTER_FAILED_REFRESH)
            return
        if content is not None:
            await self.write(sbp["metadata"]["name"], content, dict(sbp["metadata"].get("labels") or {}), owner=sbp)

    async def discard(self, name: str) -> None:
        """Remove a content Secret whose pod went before its SandboxPod was made."""
        if name not in self.unowned:
            return
        try:
            await self.meta.delete(f"/api/v1/namespaces/{self.meta_namespace}/secrets/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        self.unowned.discard(name)
