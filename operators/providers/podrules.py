"""What a kubelet decides about a pod before any runtime sees it, shared by the providers
that run pods (pure): the image pull policy the apiserver would default, and the pod's
kernel hostname."""
from __future__ import annotations

from ..models.contracts import REASON_CONFIG_ERROR
from ..models.podspec import Container, PodSpec
from .errors import InvalidSpecError
from .sandbox import SandboxRef

FQDN_MAX = 64  # the kernel's nodename (kubelet util.GetNodenameForKernel)


def pull_policy(c: Container) -> str:
    """The apiserver's defaulting: :latest or no tag means Always."""
    if c.imagePullPolicy:
        return c.imagePullPolicy
    last = c.image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def kernel_hostname(ref: SandboxRef, spec: PodSpec) -> str:
    """The pod's hostname, or with setHostnameAsFQDN and a hostDomain the fully-qualified
    name, refused over 64 characters with the kubelet's message."""
    hostname = spec.hostname or ref.name
    if not (spec.setHostnameAsFQDN and spec.hostDomain):
        return hostname
    fqdn = f"{hostname}.{spec.hostDomain}"
    if len(fqdn) > FQDN_MAX:
        raise InvalidSpecError(f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too "
                               f"long ({FQDN_MAX} characters is the max, {len(fqdn)} characters requested)",
                               reason=REASON_CONFIG_ERROR)
    return fqdn
