"""Pure builders: the two changes a running ECI group takes in place, as parameters of
UpdateContainerGroup (UpdateType IncrementalUpdate: the containers and volumes named are
changed, by name; everything else stays as created).

- new images: `Container.N.Name` + `Container.N.Image` for each container whose image the
  spec names differently from the group's (the cloud restarts those containers);
- new files of ConfigMap, Secret, downward API and projected volumes: each such volume as
  a whole ConfigFileVolume again (eci_spec.config_file_params, the create's own shape).

The ClientToken is "sk8s-<uid>-<digest of the change>": a retry after a lost answer is the
same update, which the cloud applies once; another change is another token.
"""
from __future__ import annotations

import hashlib
import json

from ...models.podspec import PodSpec
from ..lifecycle import VolumeContent
from ..sandbox import SandboxRef
from .eci_spec import config_file_params, volume_params

UPDATE_TYPE = "IncrementalUpdate"
DIGEST = 16  # hex characters: "sk8s-" + a 36-character uid + "-" + 16 = 58 <= 64


def update_token(ref: SandboxRef, params: dict[str, str]) -> str:
    """The idempotency key of one update: the pod and what the update says."""
    body = json.dumps(sorted((k, v) for k, v in params.items() if k != "ClientToken"))
    return f"sk8s-{ref.uid}-{hashlib.sha256(body.encode()).hexdigest()[:DIGEST]}"


def image_changes(spec: PodSpec, group: dict) -> dict[str, str]:
    """Container name -> its new image: the spec's containers whose image differs from the
    one the group runs (as DescribeContainerGroups shows it). Init containers ran already:
    a new image of theirs is for the next group, not this one."""
    running = {c.get("Name"): c.get("Image") for c in group.get("Containers") or []}
    return {c.name: c.image for c in spec.containers if c.name in running and running[c.name] != c.image}


def build_image_update_params(ref: SandboxRef, group_id: str, region_id: str,
                              changes: dict[str, str]) -> dict[str, str]:
    out = {"RegionId": region_id, "ContainerGroupId": group_id, "UpdateType": UPDATE_TYPE}
    for i, (name, image) in enumerate(sorted(changes.items()), 1):
        out[f"Container.{i}.Name"] = name
        out[f"Container.{i}.Image"] = image
    out["ClientToken"] = update_token(ref, out)
    return out


def content_volumes(spec: PodSpec, content: VolumeContent) -> list[str]:
    """The volumes whose files `content` carries (ConfigMap, Secret, downward API, projected)."""
    return [v.name for v in spec.volumes or [] if v.has_content and v.name in content]


def build_volume_update_params(ref: SandboxRef, group_id: str, region_id: str, spec: PodSpec,
                               content: VolumeContent, names: list[str]) -> dict[str, str]:
    """Volumes `names` with their files as `content` has them now. A volume with no file
    left (an optional source deleted) becomes an empty directory, as at creation."""
    out = {"RegionId": region_id, "ContainerGroupId": group_id, "UpdateType": UPDATE_TYPE}
    wanted = [v for v in spec.volumes or [] if v.name in names and v.has_content]
    for i, v in enumerate(wanted, 1):
        out.update(volume_params(f"Volume.{i}.", v, content))
    out["ClientToken"] = update_token(ref, out)
    return out


def volume_digests(spec: PodSpec, content: VolumeContent) -> dict[str, str]:
    """Volume name -> a digest of its files as sent: what the provider compares a new
    content with, to send only the volumes that changed."""
    out = {}
    for v in spec.volumes or []:
        if v.has_content and v.name in content:
            params = config_file_params("", v, content)
            out[v.name] = hashlib.sha256(json.dumps(sorted(params.items())).encode()).hexdigest()
    return out
