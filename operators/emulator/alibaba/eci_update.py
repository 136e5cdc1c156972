"""UpdateContainerGroup (ECI 2018-08-08), pure: a group's parameters and an update's ->
the group as it is to run now, and what changed.

The cloud's rules kept here: only a Pending or Running group is updated (else
IncorrectStatus); UpdateType is IncrementalUpdate (the default: containers and volumes
matched by Name, the fields given replace theirs, the rest stays) or RenewUpdate (the
containers and volumes given are the group's whole new list); a container that names no
container of the group is refused in an incremental update; RestartPolicy is one of the
three. What the emulator does not apply in place (the group's Cpu and Memory, its tags,
init containers, registry credentials, DNS) is refused by name rather than ignored.
"""
from __future__ import annotations

import copy
from typing import Any

from . import params as p
from .errors import ApiError, invalid, missing

UPDATABLE = ("Pending", "Running")
UPDATE_TYPES = ("IncrementalUpdate", "RenewUpdate")
RESTART_POLICIES = ("Always", "Never", "OnFailure")
TAKEN = {"ContainerGroupId", "ClientToken", "UpdateType", "RestartPolicy", "Container", "Volume"}


def incorrect_status(group_id: str, status: str) -> ApiError:
    return ApiError(403, "IncorrectStatus", f"The current status {status} of the container group {group_id} "
                                            "does not support this operation.")


def apply_update(group: dict[str, Any], status: str, flat: dict[str, str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the group updated, the containers whose Image changed, the volumes given)."""
    gid = p.text(flat, "ContainerGroupId")
    if gid is None:
        raise missing("ContainerGroupId")
    if status not in UPDATABLE:
        raise incorrect_status(gid, status)
    update = p.unflatten({k: v for k, v in flat.items() if k != "ClientToken"})
    for key in update:
        if key not in TAKEN:
            raise invalid(key, "The emulator does not update this parameter in place.")
    kind = p.text(update, "UpdateType") or "IncrementalUpdate"
    if kind not in UPDATE_TYPES:
        raise invalid("UpdateType", f"One of {', '.join(UPDATE_TYPES)}.")
    policy = p.text(update, "RestartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        raise invalid("RestartPolicy", f"One of {', '.join(RESTART_POLICIES)}.")
    new = copy.deepcopy(group)
    if policy is not None:
        new["RestartPolicy"] = policy
    before = {c.get("Name"): c.get("Image") for c in group.get("Container", [])}
    new["Container"] = _merge("Container", group.get("Container", []), update.get("Container", []), kind)
    for i, c in enumerate(new["Container"], 1):
        if not p.text(c, "Image"):
            raise missing(f"Container.{i}.Image")
    new["Volume"] = _merge("Volume", group.get("Volume", []), update.get("Volume", []), kind, whole=True)
    if sorted(before) != sorted(c.get("Name") for c in new["Container"]):
        raise invalid("Container", "The emulator neither adds nor removes containers in place.")
    images = [c["Name"] for c in new["Container"] if before[c["Name"]] != c.get("Image")]
    volumes = [v.get("Name") for v in update.get("Volume", []) if isinstance(v, dict)]
    return new, images, volumes


def _merge(kind: str, old: list[Any], given: list[Any], update_type: str, *, whole: bool = False) -> list[Any]:
    """Items matched by Name. Incremental: a container's fields given replace its own, a
    volume given replaces the one of its name (its source is one thing), an unknown name
    is refused; renew: the items given are the list."""
    by_name = {o.get("Name"): i for i, o in enumerate(old) if isinstance(o, dict)}
    out = [copy.deepcopy(o) for o in old] if update_type == "IncrementalUpdate" else []
    for i, item in enumerate(given, 1):
        if not isinstance(item, dict) or not p.text(item, "Name"):
            raise missing(f"{kind}.{i}.Name")
        if update_type == "RenewUpdate":
            out.append(copy.deepcopy(item))
        elif item["Name"] in by_name:
            at = by_name[item["Name"]]
            out[at] = copy.deepcopy(item) if whole else {**out[at], **copy.deepcopy(item)}
        elif kind == "Volume":
            out.append(copy.deepcopy(item))
        else:
            raise invalid(f"{kind}.{i}.Name", f"The group has no {kind.lower()} {item['Name']}.")
    return out
