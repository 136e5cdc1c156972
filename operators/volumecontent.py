"""The wire format of a pod's volume content: one meta-cluster Secret per SandboxPod.

Written by the virtual node (operators/virtualnode/mapping/volumes.py computes the files), read
by the provider that writes them into the sandbox. Same name and namespace as the
SandboxPod, owned by it, so that it goes when the SandboxPod goes.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Mapping

from .models.contracts import ANNOTATION_CONTENT_HASH, LABEL_VOLUME_CONTENT


def content_hash(content: Mapping[str, dict]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def build_content_secret(name: str, namespace: str, content: Mapping[str, dict], *, labels: Mapping[str, str],
                         owner: dict | None = None) -> dict:
    """The meta-cluster Secret carrying a pod's volume files: one key per volume."""
    meta: dict = {
        "name": name, "namespace": namespace,
        "labels": {**labels, LABEL_VOLUME_CONTENT: "true"},
        "annotations": {ANNOTATION_CONTENT_HASH: content_hash(content)},
    }
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "blockOwnerDeletion": False}]
    data = {vol: base64.b64encode(json.dumps(files, sort_keys=True).encode()).decode()
            for vol, files in content.items()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": data}


def read_content_secret(secret: dict) -> dict[str, dict[str, tuple[bytes, int]]]:
    """The inverse, for the provider: volume -> {path: (bytes, mode)}."""
    out = {}
    for vol, blob in (secret.get("data") or {}).items():
        files = json.loads(base64.b64decode(blob))
        out[vol] = {p: (base64.b64decode(f["data"]), int(f["mode"])) for p, f in files.items()}
    return out
