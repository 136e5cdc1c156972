"""Pure builder: a SandboxPod's ephemeral container (`kubectl debug`) -> the ephemeral
container of its meta Pod (core/v1 EphemeralContainer: no ports, probes, lifecycle hooks or
resources; the tenant's apiserver validated that already, refused here again by name)."""
from __future__ import annotations

from ...models.podspec import PodSpec
from ...models.sandboxpod import EphemeralContainer
from ..sandbox import SandboxRef
from .containers import build_container
from .refusals import container_refusals, refusal

NOT_EPHEMERAL = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
                 "restartPolicy")


def build_ephemeral(c: EphemeralContainer, spec: PodSpec, ref: SandboxRef) -> dict:
    p = f"ephemeralContainers[{c.name}]"
    found = container_refusals(p, c) + [(f"{p}.{k}", "ephemeral containers have none") for k in NOT_EPHEMERAL
                                        if getattr(c, k)]
    if found:
        raise refusal(found)
    out = build_container(c, spec, ref)
    if c.targetContainerName:
        out["targetContainerName"] = c.targetContainerName
    return out
