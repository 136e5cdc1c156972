"""Pure builder: a SandboxPod's PodSpec -> the query parameters of ECI's
CreateContainerGroup, flat and spelled as the cloud's API spells them ("Container.1.Name",
"Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content", "HostAliase.1.Hostname.1", ...).

The client hands each pair to the SDK's `add_query_param`: tenant values travel as
URL-encoded data. Values the cloud documents as invalid (more containers, volumes or tags
than it takes, a config file over 32 KiB, an env name it refuses) and fields it cannot
express (eci_unsupported.py) raise InvalidSpecError naming the field, before any call.
Limits the API reference states only loosely (command and argument counts, env value
lengths) are left to the cloud, whose error reaches the pod's events with its own message.

Containers: eci_container.py; cpu and memory: eci_resources.py.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME, REASON_CONFIG_ERROR
from .eci_status import TAG_NAME, TAG_NAMESPACE, TAG_UID, tag_value
from ...models.podspec import PodSpec
from ...models.volumes import Volume
from ..errors import InvalidSpecError, ProviderError
from ..lifecycle import VolumeContent
from ..podrules import kernel_hostname
from ..sandbox import SandboxRef
from .eci_container import container_params
from ...quantity import memory_bytes
from .eci_resources import GIB, fmt, group_size
from .eci_unsupported import sysctl_param, unsupported, unsupported_fields

__all__ = ["EciPlacement", "build_create_params", "unsupported_fields", "client_token"]

MAX_TAGS = 20  # Tag.N: "最多可以绑定20个" (API reference)
MAX_TAG_KEY, MAX_TAG_VALUE = 64, 128
MAX_CONFIG_FILE = 32 * 1024  # ConfigFileToPath.Content: "配置文件不能大于32 KB"
MAX_CLIENT_TOKEN = 64  # ASCII, at most 64 characters
GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,126}[a-z0-9])$")  # 2-128, lowercase, digits, inner '-'
MAX_NAMESERVERS, MAX_SEARCHES = 3, 32  # the kubelet's limits, which resolv.conf readers share


@dataclass(frozen=True)
class EciPlacement:
    """Where and how a tenant's groups run; `name_servers`, `searches` and `ndots` are the
    resolv.conf of dnsPolicy ClusterFirst (the tenant's private zone's resolver, its
    namespace search path)."""

    region_id: str
    zone_id: str | None
    vswitch_id: str
    security_group_id: str
    cluster_uid: str
    home_id: str
    name_servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    ndots: int | None = 5


def client_token(ref: SandboxRef) -> str:
    """CreateContainerGroup's idempotency key: a retry after a lost answer makes no second group."""
    return f"sk8s-{ref.uid}"


def build_create_params(ref: SandboxRef, spec: PodSpec, labels: dict[str, str], placement: EciPlacement,
                        content: VolumeContent | None = None) -> dict[str, str]:
    """Every parameter of the group's CreateContainerGroup. `content`: the files of its
    ConfigMap, Secret, downward API and projected volumes (SandboxLifecycle.prepare_volumes)."""
    found = unsupported(spec)
    if found:
        raise InvalidSpecError("; ".join(f"{path}: not supported on ECI: {why}" for path, why in found),
                               reason=REASON_CONFIG_ERROR)
    out = _group_params(ref, spec, placement)
    for i, c in enumerate(spec.containers, 1):
        out.update(container_params(f"Container.{i}.", c, spec, ref, init=False))
    for i, c in enumerate(spec.initContainers or [], 1):
        out.update(container_params(f"InitContainer.{i}.", c, spec, ref, init=True))
    for i, v in enumerate(spec.volumes or [], 1):
        out.update(volume_params(f"Volume.{i}.", v, content or {}))
    out.update(dns_params(spec, placement))
    out.update(host_alias_params(spec))
    out.update(sysctl_params(spec))
    out.update(tag_params(tags_for(ref, labels, placement)))
    return out


def _group_params(ref: SandboxRef, spec: PodSpec, placement: EciPlacement) -> dict[str, str]:
    name, token = ref.instance_name, client_token(ref)
    if not GROUP_NAME.match(name) or len(token) > MAX_CLIENT_TOKEN or not token.isascii():
        raise InvalidSpecError(f"uid {ref.uid!r}: no valid ECI group name or client token", reason=REASON_CONFIG_ERROR)
    cpu, mem = group_size(spec)
    grace = spec.terminationGracePeriodSeconds
    out = {
        "RegionId": placement.region_id, "VSwitchId": placement.vswitch_id,
        "SecurityGroupId": placement.security_group_id, "ContainerGroupName": name, "ClientToken": token,
        "RestartPolicy": spec.restartPolicy or "Always",
        "TerminationGracePeriodSeconds": str(30 if grace is None else grace),
        "Cpu": fmt(cpu), "Memory": fmt(mem), "HostName": kernel_hostname(ref, spec),
    }
    if placement.zone_id:
        out["ZoneId"] = placement.zone_id
    if spec.activeDeadlineSeconds is not None:
        out["ActiveDeadlineSeconds"] = str(spec.activeDeadlineSeconds)
    if spec.shareProcessNamespace:
        out["ShareProcessNamespace"] = "true"
    return out


def volume_params(p: str, v: Volume, content: VolumeContent) -> dict[str, str]:
    out = {f"{p}Name": v.name}
    if v.emptyDir is not None:
        out[f"{p}Type"] = "EmptyDirVolume"
        if v.emptyDir.medium == "Memory":
            out[f"{p}EmptyDirVolume.Medium"] = "Memory"
        if v.emptyDir.sizeLimit is not None:
            out[f"{p}EmptyDirVolume.SizeLimit"] = _size_limit(v)
    elif v.nfs is not None:
        out.update({f"{p}Type": "NFSVolume", f"{p}NFSVolume.Server": v.nfs.server, f"{p}NFSVolume.Path": v.nfs.path,
                    f"{p}NFSVolume.ReadOnly": "true" if v.nfs.readOnly else "false"})
    elif v.has_content:
        out.update(config_file_params(p, v, content))
    else:
        raise InvalidSpecError(f"volume {v.name}: no source ECI can express", reason=REASON_CONFIG_ERROR)
    return out


def _size_limit(v: Volume) -> str:
    """emptyDir sizeLimit in GiB, the unit of EmptyDirVolume.SizeLimit ("2")."""
    try:
        gib = memory_bytes(v.emptyDir.sizeLimit) / GIB
    except ValueError as exc:
        raise InvalidSpecError(f"volume {v.name}: emptyDir.sizeLimit: {exc}", reason=REASON_CONFIG_ERROR) from exc
    return fmt(gib).rstrip("0").rstrip(".")


def config_file_params(p: str, v: Volume, content: VolumeContent) -> dict[str, str]:
    """A ConfigMap, Secret, downward API or projected volume: its files, resolved by the
    SandboxPod's operator, as a ConfigFileVolume (base64 contents, octal modes). One with no
    file at all (an optional source that does not exist) is an empty directory, as it is on
    a kubelet."""
    if v.name not in content:
        raise ProviderError(f"volume {v.name}: its files were not prepared (prepare_volumes)",
                            reason="VolumeContentMissing", retryable=True)
    files = content[v.name]
    if not files:
        return {f"{p}Type": "EmptyDirVolume"}
    out = {f"{p}Type": "ConfigFileVolume"}
    source = v.configMap or v.secret or v.downwardAPI or v.projected
    if source is not None and source.defaultMode is not None:
        out[f"{p}ConfigFileVolume.DefaultMode"] = f"{source.defaultMode:04o}"
    for m, (path, (data, mode)) in enumerate(sorted(files.items()), 1):
        if path.startswith("/") or ".." in path.split("/"):
            raise InvalidSpecError(f"volume {v.name}: file {path!r} is not a relative path inside the volume",
                                   reason=REASON_CONFIG_ERROR)
        if len(data) > MAX_CONFIG_FILE:
            raise InvalidSpecError(f"volume {v.name}: file {path} has {len(data)} bytes; ECI's config files take "
                                   f"at most {MAX_CONFIG_FILE}", reason=REASON_CONFIG_ERROR)
        q = f"{p}ConfigFileVolume.ConfigFileToPath.{m}."
        out.update({f"{q}Path": path, f"{q}Content": base64.b64encode(data).decode(), f"{q}Mode": f"{mode:04o}"})
    return out


def dns_params(spec: PodSpec, placement: EciPlacement) -> dict[str, str]:
    """The pod's resolv.conf as the kubelet writes it. ClusterFirst: the tenant's resolver
    and search path first, then dnsConfig's, with ECI's DnsPolicy None (only what is given
    here); Default: the VPC's resolver (ECI's Default) plus dnsConfig; None: dnsConfig only."""
    policy = spec.dnsPolicy or "ClusterFirst"
    cfg = spec.dnsConfig
    servers = list(cfg.nameservers or []) if cfg else []
    searches = list(cfg.searches or []) if cfg else []
    options = {o.name: o.value for o in (cfg.options or [])} if cfg else {}
    if policy == "ClusterFirst":
        servers = [s for s in placement.name_servers if s not in servers] + servers
        searches = [s for s in placement.searches if s not in searches] + searches
        if placement.ndots is not None:
            options = {"ndots": str(placement.ndots), **options}
    # ClusterFirst without a cluster resolver falls back to Default, as the kubelet's does.
    default = policy == "Default" or (policy == "ClusterFirst" and not servers)
    out = {"DnsPolicy": "Default" if default else "None"}
    out.update({f"DnsConfig.NameServer.{i}": s for i, s in enumerate(servers[:MAX_NAMESERVERS], 1)})
    out.update({f"DnsConfig.Search.{i}": s for i, s in enumerate(searches[:MAX_SEARCHES], 1)})
    for i, (name, value) in enumerate(options.items(), 1):
        out[f"DnsConfig.Option.{i}.Name"] = name
        if value is not None:
            out[f"DnsConfig.Option.{i}.Value"] = value
    return out


def host_alias_params(spec: PodSpec) -> dict[str, str]:
    """hostAliases, as the API spells them: HostAliase.N.Ip, HostAliase.N.Hostname.M."""
    out = {}
    for i, alias in enumerate(spec.hostAliases or [], 1):
        out[f"HostAliase.{i}.Ip"] = alias.ip
        out.update({f"HostAliase.{i}.Hostname.{j}": h for j, h in enumerate(alias.hostnames or [], 1)})
    return out


def sysctl_params(spec: PodSpec) -> dict[str, str]:
    """Safe sysctls: ECI's two safe ones as SecurityContext.Sysctl, other net.* ones (its
    "unsafe" list, still namespaced to the group's own VM) as HostSecurityContext.Sysctl."""
    out: dict[str, str] = {}
    counts: dict[str, int] = {}
    for s in (spec.securityContext.sysctls or []) if spec.securityContext else []:
        key = sysctl_param(s.name)
        n = counts[key] = counts.get(key, 0) + 1
        out[f"{key}.{n}.Name"] = s.name.replace("/", ".")
        out[f"{key}.{n}.Value"] = s.value
    return out


def tags_for(ref: SandboxRef, labels: dict[str, str], placement: EciPlacement) -> dict[str, str]:
    """The group's tags: the SandboxPod's labels for the provider, and who owns the group
    (ref_from_tags reads these back)."""
    tags = {**labels, LABEL_HOME: placement.home_id, TAG_NAMESPACE: ref.namespace, TAG_NAME: ref.name,
            TAG_UID: ref.uid}
    cluster_uid = placement.cluster_uid or labels.get(LABEL_CLUSTER_UID)
    if cluster_uid:  # an admin's SandboxPod belongs to no tenant cluster
        tags[LABEL_CLUSTER_UID] = cluster_uid
    return tags


def tag_params(tags: dict[str, str]) -> dict[str, str]:
    """Tag.N.Key/Value, refused where the cloud would refuse them: more than 20, a key over 64
    characters or starting aliyun / acs:, a value over 128, a URL in either."""
    if len(tags) > MAX_TAGS:
        raise InvalidSpecError(f"{len(tags)} tags: ECI takes at most {MAX_TAGS}", reason=REASON_CONFIG_ERROR)
    out = {}
    for n, (key, value) in enumerate(sorted(tags.items()), 1):
        value = tag_value(value)
        bad = (not key or len(key) > MAX_TAG_KEY or key.startswith(("aliyun", "acs:")) or len(value) > MAX_TAG_VALUE
               or value.startswith("acs:") or any(u in key + value for u in ("http://", "https://")))
        if bad:
            raise InvalidSpecError(f"tag {key}={value!r}: not a valid ECI tag (key up to {MAX_TAG_KEY} characters, "
                                   f"value up to {MAX_TAG_VALUE})", reason=REASON_CONFIG_ERROR)
        out[f"Tag.{n}.Key"] = key
        out[f"Tag.{n}.Value"] = value
    return out
