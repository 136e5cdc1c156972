"""Pure builders for PrivateZone (PVTZ) calls: the remark that names sk8s's zone, the cloud
records of sk8s's record sets, the plan that turns the zone's records into the wanted
ones, and the flat parameters of each request.

A sk8s record set ({"rr", "type", "values", "ttl"}) is one cloud record per value (PVTZ
keeps a single Value per record). SRV values are already "priority weight port target",
as PVTZ spells them; Priority is MX's alone and never sent."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

REMARK_MAX = 50  # the cloud's limit; letters, digits and "_ - , ." only


@dataclass(frozen=True)
class CloudRecord:
    rr: str
    type: str
    value: str
    ttl: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rr.lower(), self.type, self.value


@dataclass
class RecordPlan:
    delete: list[int] = field(default_factory=list)  # RecordIds
    update: list[tuple[int, CloudRecord]] = field(default_factory=list)
    add: list[CloudRecord] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.delete or self.update or self.add)


def zone_remark(home_id: str, zone_id: str) -> str:
    """What marks the zone of one PrivateZone object of one installation: names repeat
    (every tenant has its cluster.local), and a remark is the only mark AddZone's
    neighbours can set. "sk8s.<home>.<uid without dashes>" is 48 characters for a 10-character
    home id and a UUID."""
    clean = lambda s: re.sub(r"[^A-Za-z0-9]", "", s)  # noqa: E731 - the remark's alphabet
    remark = f"sk8s.{clean(home_id)}.{clean(zone_id)}"
    if len(remark) > REMARK_MAX:
        raise ValueError(f"zone remark {remark!r} is over {REMARK_MAX} characters")
    return remark


def cloud_records(record_sets: list[dict]) -> list[CloudRecord]:
    out: dict[tuple[str, str, str], CloudRecord] = {}
    for s in record_sets:
        for value in s.get("values") or []:
            r = CloudRecord(rr=s["rr"], type=s.get("type", "A"), value=value, ttl=int(s.get("ttl", 5)))
            out.setdefault(r.key, r)
    return list(out.values())


def existing_record(r: dict) -> tuple[int, CloudRecord]:
    """One element of DescribeZoneRecords' Records.Record."""
    return int(r["RecordId"]), CloudRecord(rr=r["Rr"], type=r["Type"], value=r["Value"], ttl=int(r.get("Ttl", 60)))


def plan_records(wanted: list[CloudRecord], existing: list[tuple[int, CloudRecord]]) -> RecordPlan:
    """Deletes, updates, adds (run in that order: a CNAME replacing A records at a name is
    added once they are gone). A record whose value is no longer wanted is rewritten in place
    when a new value of the same name and type needs a home: an address change is one
    UpdateZoneRecord, never a moment with no answer."""
    plan = RecordPlan()
    wanted_by_key = {r.key: r for r in wanted}
    kept: set[tuple[str, str, str]] = set()
    stale: list[tuple[int, CloudRecord]] = []
    for record_id, r in existing:
        want = wanted_by_key.get(r.key)
        if want is None or r.key in kept:  # not wanted, or a duplicate of one kept
            stale.append((record_id, r))
            continue
        kept.add(r.key)
        if want.ttl != r.ttl or want.rr != r.rr:
            plan.update.append((record_id, want))
    missing = [r for r in wanted if r.key not in kept]
    for r in missing:
        slot = next((i for i, (_, old) in enumerate(stale) if (old.rr.lower(), old.type) == (r.rr.lower(), r.type)),
                    None)
        if slot is None:
            plan.add.append(r)
        else:
            plan.update.append((stale.pop(slot)[0], r))
    plan.delete = [record_id for record_id, _ in stale]
    return plan


def record_params(r: CloudRecord) -> dict[str, str]:
    return {"Rr": r.rr, "Type": r.type, "Value": r.value, "Ttl": str(r.ttl)}


def bind_params(zone_id: str, region: str, vpc_ids: list[str]) -> dict[str, str]:
    """BindZoneVpc's parameters: the whole list (none unbinds every VPC)."""
    params = {"ZoneId": zone_id}
    for i, vpc_id in enumerate(vpc_ids, 1):
        params[f"Vpcs.{i}.RegionId"] = region
        params[f"Vpcs.{i}.VpcId"] = vpc_id
    return params
