"""The files of a SandboxPod's ConfigMap, Secret and downward API volumes, read from its
volume-content Secret (see operators/volumecontent.py)."""
from __future__ import annotations

import asyncio

from kubernetes.client.exceptions import ApiException

from .. import kube
from ..models.podspec import PodSpec
from ..volumecontent import read_content_secret

Content = dict[str, dict[str, tuple[bytes, int]]]


class ContentMissing(Exception):
    """The virtual node has not written the pod's volume content yet."""


def needs_content(spec: PodSpec) -> bool:
    return any(v.has_content for v in spec.volumes or [])


async def load(namespace: str, name: str, spec: PodSpec) -> Content:
    if not needs_content(spec):
        return {}

    def _read():
        try:
            return kube.core().read_namespaced_secret(name, namespace).to_dict()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    secret = await asyncio.to_thread(_read)
    if secret is None:
        raise ContentMissing(f"volume content {namespace}/{name} not written yet")
    return read_content_secret(secret)
