"""The fields of a PodSpec that a meta-cluster Pod cannot honour without breaking the
sandbox's promises (pure), for `ensure` to refuse by name before any call (InvalidSpec,
ConfigError: the SandboxPod fails with the list), never dropping one silently.

The meta kubelet is not the sandbox's own: what it does on the node (mounts, probes from the
node's network namespace) and what it reads from the meta namespace (Secrets, ConfigMaps by
name) must never be steered by a tenant. So refused are:

- references resolved in the meta namespace: env from a Secret or ConfigMap key (the
  virtual node resolves those in the tenant's API; what is left would name meta objects);
- whatever the node itself would do for the tenant: NFS mounts (the node mounts the
  tenant's server), probes and hooks with a `host` (the meta kubelet runs them from the
  node, so 127.0.0.1 would be the node's loopback, not the pod's);
- what weakens the sandbox (privileged, capabilities beyond the default set and
  IPC_LOCK/SYS_PTRACE, seccomp or AppArmor other than RuntimeDefault, /proc unmasked,
  SELinux or Windows options, unsafe sysctls, user namespaces off): the models refuse them
  already; refused here too for a spec that got past admission;
- what the meta-cluster would answer differently from a tenant's kubelet: a hostname that
  is no DNS label, and a pod domain (`hostDomain`, `setHostnameAsFQDN`: the meta kubelet
  writes /etc/hosts and the FQDN from the meta Pod's own namespace and domain);
- resources other than cpu, memory and ephemeral-storage (the meta nodes' extended
  resources are the platform team's, not offered to tenants).
"""
from __future__ import annotations

import re

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container, PodSpec, Probe
from ...models.securitycontext import ADDABLE_CAPABILITIES, SAFE_SYSCTLS
from ..errors import InvalidSpecError

Found = list[tuple[str, str]]
RESOURCES = ("cpu", "memory", "ephemeral-storage")
METADATA_FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid")
LATE_FIELDS = ("status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
WEAKENS = "it would weaken the sandbox"


def cap_name(cap: str) -> str:
    up = cap.upper()
    return up[4:] if up.startswith("CAP_") else up


def refusal(found: Found) -> InvalidSpecError:
    """One error naming every field refused (the SandboxPod's reason: CreateContainerConfigError)."""
    return InvalidSpecError("; ".join(f"{path}: not supported by the metapod provider: {why}" for path, why in found),
                            reason=REASON_CONFIG_ERROR)


def unsupported(spec: PodSpec) -> Found:
    """(field path, why) for every field of `spec` a meta-cluster Pod cannot honour."""
    found = _pod(spec)
    for key in ("containers", "initContainers"):
        for i, c in enumerate(getattr(spec, key) or []):
            found += container_refusals(f"spec.{key}[{i}]", c)
    return found


def _pod(spec: PodSpec) -> Found:
    found: Found = []
    if spec.hostname and not DNS_LABEL.match(spec.hostname):
        found.append(("spec.hostname", "a meta-cluster Pod's hostname is a DNS label"))
    if spec.hostDomain:
        found.append(("spec.hostDomain", "the meta kubelet writes the pod's domain of the meta namespace into "
                                         "/etc/hosts, not the tenant's"))
    if spec.setHostnameAsFQDN:
        found.append(("spec.setHostnameAsFQDN", "the meta kubelet would make the FQDN of the meta namespace"))
    if spec.hostUsers is False:
        found.append(("spec.hostUsers", "sandboxes have no user namespaces"))
    if spec.dnsPolicy == "None" and not (spec.dnsConfig and spec.dnsConfig.nameservers):
        found.append(("spec.dnsConfig.nameservers", "dnsPolicy None needs at least one nameserver"))
    for j, v in enumerate(spec.volumes or []):
        if v.nfs:
            found.append((f"spec.volumes[{j}].nfs", "the meta node would mount the tenant's NFS server itself"))
    psc = spec.securityContext
    if psc is not None:
        found += _profiles("spec.securityContext", psc)
        for j, s in enumerate(psc.sysctls or []):
            if s.name.replace("/", ".") not in SAFE_SYSCTLS:
                found.append((f"spec.securityContext.sysctls[{j}]", f"{s.name} is not a safe sysctl"))
    return found


def _profiles(p: str, sc) -> Found:
    found: Found = []
    for key in ("seccompProfile", "appArmorProfile"):
        profile = getattr(sc, key)
        if profile is not None and profile.type != "RuntimeDefault":
            found.append((f"{p}.{key}", f"only RuntimeDefault: {WEAKENS}"))
    for key in ("seLinuxOptions", "windowsOptions"):
        if getattr(sc, key) is not None:
            found.append((f"{p}.{key}", "sandboxes have none"))
    return found


def container_refusals(p: str, c: Container) -> Found:
    """(field path, why) for one container (also an ephemeral one)."""
    found: Found = []
    for j, e in enumerate(c.env or []):
        src = e.valueFrom
        if src is None:
            continue
        if src.secretKeyRef or src.configMapKeyRef:
            found.append((f"{p}.env[{j}].valueFrom", "a Secret or ConfigMap would be read from the meta namespace"))
        elif src.fieldRef and src.fieldRef.fieldPath not in METADATA_FIELDS + LATE_FIELDS:
            found.append((f"{p}.env[{j}].valueFrom.fieldRef", f"{src.fieldRef.fieldPath} is the meta Pod's"))
    for kind in ("limits", "requests"):
        for name in (getattr(c.resources, kind) or {}) if c.resources else {}:
            if name not in RESOURCES:
                found.append((f"{p}.resources.{kind}.{name}", "only cpu, memory and ephemeral-storage"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        found += _host(f"{p}.{key}", getattr(c, key))
        probe = getattr(c, key)
        if probe is not None and probe.grpc is not None and probe.grpc.mode == "TLS":
            found.append((f"{p}.{key}.grpc.mode", "a meta kubelet's gRPC probes are plaintext"))
    for key in ("postStart", "preStop"):
        found += _host(f"{p}.lifecycle.{key}", getattr(c.lifecycle, key) if c.lifecycle else None)
    return found + _container_security(p, c)


def _host(p: str, handler: Probe | None) -> Found:
    found: Found = []
    for action in ("httpGet", "tcpSocket"):
        act = getattr(handler, action, None) if handler else None
        if act is not None and act.host:
            found.append((f"{p}.{action}.host", "the meta kubelet connects from the node: only the pod's own "
                                                "address (host left empty) is the pod"))
    return found


def _container_security(p: str, c: Container) -> Found:
    sc = c.securityContext
    if sc is None:
        return []
    p = f"{p}.securityContext"
    found = _profiles(p, sc)
    if sc.privileged:
        found.append((f"{p}.privileged", f"{WEAKENS}: a privileged container can leave it"))
    if sc.procMount not in (None, "Default"):
        found.append((f"{p}.procMount", f"only Default: {WEAKENS}"))
    added = [cap for cap in (sc.capabilities.add or []) if cap_name(cap) not in ADDABLE_CAPABILITIES] \
        if sc.capabilities else []
    if added:
        found.append((f"{p}.capabilities.add", f"{', '.join(added)}: {WEAKENS}"))
    return found
