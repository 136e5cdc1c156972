"""A pod's volume content changed (a ConfigMap, Secret or label it shows): swap the files
in its sandbox, as the kubelet's periodic volume sync does, but as soon as it changes."""
from __future__ import annotations

import logging

import kopf

from ... import kube
from ...volumecontent import read_content_secret
from ..ownership import takes
from ..sandbox import PLURAL, ref_of, spec_of

log = logging.getLogger(__name__)


async def update_volume_content(event: dict, body, namespace: str, name: str, memo: kopf.Memo, **_) -> None:
    if event.get("type") == "DELETED":
        return
    sbp = await kube.get_object(PLURAL, namespace, name)
    if sbp is None or sbp["metadata"].get("deletionTimestamp") or not takes(sbp.get("spec")):
        return  # the create handler writes the files of a sandbox not made yet; another provider's
    spec = spec_of(sbp)
    changed = await memo.provider.write_volumes(ref_of(sbp), spec, read_content_secret(dict(body)))
    if changed:
        log.info("SandboxPod %s/%s: volumes %s updated", namespace, name, ", ".join(changed))
