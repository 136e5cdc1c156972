"""The files of a SandboxPod's ConfigMap, Secret and downward API volumes, read from its
volume-content Secret (see operators/volumecontent.py)."""
from __future__ import annotations

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
    secret = await kube.read_secret(namespace, name)
    if secret is None:
        raise ContentMissing(f"volume content {namespace}/{name} not written yet")
    return read_content_secret(secret)
