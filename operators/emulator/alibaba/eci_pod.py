"""An emulated container group -> the PodSpec and volume files a local sandbox runs (pure):
the inverse of the aliyun provider's builder (providers/aliyun/eci_spec.py).

`pod_from_group(group)` reads the group as CreateContainerGroup received it (unflattened,
params.unflatten) and refuses, as InvalidParameter naming the parameter, everything it
does not honour: a parameter it does not know, a value the local sandbox cannot take
(an unsafe sysctl, a capability a sandbox may not add, a config file path leaving its
volume). What the API itself reads (names, placement, tags, the client token) is skipped
here.

What maps to what:
- RestartPolicy, TerminationGracePeriodSeconds, HostName (else the group's name),
  ShareProcessNamespace, HostAliase.N, DnsConfig: the PodSpec's fields. DnsPolicy: ECI's
  Default is the VPC's resolver plus DnsConfig, which on this host is the local VPC's
  resolver (the local provider's ClusterFirst); None is DnsConfig only (its None).
- SecurityContext.Sysctl / HostSecurityContext.Sysctl: the pod's sysctls, safe ones only.
- Cpu, Memory: the size of a container that names none (eci_pod_container.py).
- Volumes: EmptyDirVolume (Medium, SizeLimit in GiB), NFSVolume, and ConfigFileVolume,
  whose files (base64 Content, octal Mode, else DefaultMode, else 0644) become
  VolumeContent of a `projected` volume: the local provider writes a content volume's
  files as given, whatever its source, and mounts it read-only as ECI does.
- ActiveDeadlineSeconds is refused: the local provider does not enforce it (the virtual
  node does, for tenant pods), and a deadline quietly ignored would keep a group running.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import ValidationError

from ...models.podspec import PodSpec
from ...models.securitycontext import SAFE_SYSCTLS
from ...providers.lifecycle import VolumeContent
from .eci_fields import Fields
from .eci_pod_container import container_from, memory_quantity
from .errors import invalid

# Read by the API (eci.py): names, placement, tags, identity.
API_FIELDS = ("ContainerGroupName", "ContainerGroupId", "RegionId", "ZoneId", "VSwitchId", "SecurityGroupId",
              "Tag", "ClientToken", "VpcId", "LocalVpc")  # the last two: networking.Placement's
DEFAULT_MODE = 0o644
MEDIUMS = ("Memory",)
KINDS = ("EmptyDirVolume", "NFSVolume", "ConfigFileVolume")
# PodSpec field paths -> the group's parameters, to name a value the models refuse.
LIST_NAMES = {"containers": "Container", "initContainers": "InitContainer", "volumes": "Volume",
              "hostAliases": "HostAliase"}


def pod_from_group(group: dict[str, Any]) -> tuple[PodSpec, VolumeContent]:
    f = Fields(group)
    f.skip(*API_FIELDS)
    if f.has("ActiveDeadlineSeconds"):
        raise invalid("ActiveDeadlineSeconds", "The emulator's sandboxes have no deadline.")
    size = (f.number("Cpu"), f.number("Memory"))
    pod: dict[str, Any] = {
        "restartPolicy": f.choice("RestartPolicy", ("Always", "Never", "OnFailure")) or "Always",
        "containers": [container_from(c, init=False, size=size) for c in f.items("Container")],
    }
    inits = [container_from(c, init=True, size=size) for c in f.items("InitContainer")]
    if inits:
        pod["initContainers"] = inits
    grace = f.integer("TerminationGracePeriodSeconds", low=0, high=3600)
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    pod["hostname"] = f.text("HostName") or default_hostname(str(group.get("ContainerGroupName") or ""))
    if f.boolean("ShareProcessNamespace"):
        pod["shareProcessNamespace"] = True
    pod.update(_dns(f))
    aliases = [{"ip": a.text("Ip"), "hostnames": a.strings("Hostname") or []} for a in f.items("HostAliase")]
    if aliases:
        pod["hostAliases"] = aliases
    sysctls = _sysctls(f, "SecurityContext") + _sysctls(f, "HostSecurityContext")
    if sysctls:
        pod["securityContext"] = {"sysctls": sysctls}
    content: VolumeContent = {}
    volumes = [_volume(v, content) for v in f.items("Volume")]
    if volumes:
        pod["volumes"] = volumes
    f.done()
    return _validated(pod), content


def default_hostname(group_name: str) -> str | None:
    """ECI names a group's host after the group; a hostname takes at most 63 characters."""
    return group_name[:63].rstrip("-") or None


def _validated(pod: dict[str, Any]) -> PodSpec:
    """The PodSpec, a value its model refuses named by the group's parameter as near as the
    model's location allows ("Container.1.ports.0.containerPort")."""
    try:
        return PodSpec.model_validate(pod)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err.get("loc") or ())
        if len(loc) >= 2 and loc[0] in LIST_NAMES and isinstance(loc[1], int):
            loc = [f"{LIST_NAMES[loc[0]]}.{loc[1] + 1}"] + loc[2:]
        elif loc and loc[0] == "hostname":
            loc = ["HostName"]
        raise invalid(".".join(str(x) for x in loc) or "(group)", err.get("msg", "")) from None


def _dns(f: Fields) -> dict[str, Any]:
    policy = f.literal("DnsPolicy") or "Default"
    if policy not in ("Default", "None"):
        raise invalid("DnsPolicy", "One of Default, None.")
    cfg = f.child("DnsConfig")
    out: dict[str, Any] = {"dnsPolicy": "ClusterFirst" if policy == "Default" else "None"}
    if cfg is None:
        return out
    dns: dict[str, Any] = {}
    if servers := cfg.strings("NameServer"):
        dns["nameservers"] = servers
    if searches := cfg.strings("Search"):
        dns["searches"] = searches
    options = [{"name": o.text("Name"), **({"value": v} if (v := o.literal("Value")) is not None else {})}
               for o in cfg.items("Option")]
    if options:
        dns["options"] = options
    out["dnsConfig"] = dns
    return out


def _sysctls(f: Fields, key: str) -> list[dict[str, str]]:
    sc = f.child(key)
    if sc is None:
        return []
    out = []
    for s in sc.items("Sysctl"):
        name, value = s.text("Name") or "", s.text("Value")
        if name.replace("/", ".") not in SAFE_SYSCTLS:
            raise invalid(s.name("Name"), f"{name} is not a sysctl a local sandbox may set.")
        out.append({"name": name, "value": value or ""})
    return out


def _volume(v: Fields, content: VolumeContent) -> dict[str, Any]:
    name = v.text("Name")
    kind = v.choice("Type", KINDS)
    if kind is None:
        raise invalid(v.name("Type"), "A volume needs a Type.")
    for other in KINDS:
        if other != kind and v.child(other) is not None:
            raise invalid(v.name(other), f"The volume's Type is {kind}.")
    out: dict[str, Any] = {"name": name}
    source = v.child(kind)
    if kind == "EmptyDirVolume":
        empty: dict[str, Any] = {}
        if source is not None:
            if medium := source.choice("Medium", MEDIUMS):
                empty["medium"] = medium
            if (limit := source.number("SizeLimit")) is not None:
                empty["sizeLimit"] = memory_quantity(limit)
        out["emptyDir"] = empty
    elif kind == "NFSVolume":
        if source is None:
            raise invalid(v.name("NFSVolume.Server"), "An NFS volume needs a server and a path.")
        out["nfs"] = {"server": source.text("Server"), "path": source.text("Path"),
                      "readOnly": bool(source.boolean("ReadOnly"))}
    else:
        default = _mode(source, "DefaultMode") if source is not None else None
        files = _config_files(source, DEFAULT_MODE if default is None else default) if source else {}
        content[str(name)] = files
        out["projected"] = {"sources": [], **({"defaultMode": default} if default is not None else {})}
    return out


def _mode(f: Fields, key: str) -> int | None:
    raw = f.text(key)
    if raw is None:
        return None
    try:
        mode = int(raw, 8)
    except ValueError:
        raise invalid(f.name(key), "An octal file mode, as 0644.") from None
    if not 0 <= mode <= 0o777:
        raise invalid(f.name(key), "A file mode from 0000 to 0777.")
    return mode


def _config_files(f: Fields, default: int) -> dict[str, tuple[bytes, int]]:
    files: dict[str, tuple[bytes, int]] = {}
    for item in f.items("ConfigFileToPath"):
        path = item.literal("Path") or ""
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") or p.startswith("..") for p in parts):
            raise invalid(item.name("Path"), "A relative path inside the volume, without '..'.")
        try:
            data = base64.b64decode(item.literal("Content") or "", validate=True)
        except (binascii.Error, ValueError):
            raise invalid(item.name("Content"), "The file's content, base64-encoded.") from None
        if path in files:
            raise invalid(item.name("Path"), "Each path once.")
        mode = _mode(item, "Mode")
        files[path] = (data, default if mode is None else mode)
    return files

