"""When to describe the container groups on their way somewhere: pure bookkeeping, the
clock given by the caller, no I/O.

A call made too early finds the group still Scheduling or Pending and buys nothing, so:

- a group this process created is first described once the time groups take to leave
  Scheduling/Pending has passed: an EWMA learnt from the groups seen leaving it, bounded
  (`first_max`), `busy_interval` until there is one;
- a group still moving is described again after `busy_interval`, or a quarter of the
  time it has been moving when that is longer (at most `idle_interval`): a slow image
  pull costs a call every few seconds, not two a second, and is seen at most a quarter
  late;
- describe rounds come at most once per `busy_interval`: a round takes every moving
  group whose time has come, 20 an id list, and fills its last call with the others (a
  place in a call costs nothing), so a burst of pods costs a call per round, not per pod.

The EWMA's sample, for a group seen out of Scheduling/Pending at age `hi`, last seen in
them at age `lo` (none: the first look found it out):
- the cloud's own time (its containers' latest StartTime less the group's CreationTime,
  in whole seconds) when that says the group was out well before the look (over a
  second, the timestamps' resolution): a first look far too late is learnt from at once;
- else, if the first look found it out, `hi` less a `busy_interval` (quicker, by how
  much unknown);
- else the middle of (lo, hi].
A sample below the EWMA weighs twice as much as one above: a look too late costs the pod
time, one too early only a call. The first look finds the group out about half the time:
a describe and a half per group, seen Running as soon as with a look every interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

PAGE = 20  # DescribeContainerGroups' largest id list
STARTING = {"Scheduling", "Pending"}
ALPHA_UP, ALPHA_DOWN = 0.25, 0.5  # EWMA weights of a sample above / below the average


@dataclass
class _Moving:
    since: float  # created by this process, or first seen moving
    created: bool  # `since` is its creation: its age teaches the EWMA
    seen: float  # when it was last described (still moving)
    due: float  # when to describe it next


class DescribePacing:
    def __init__(self, busy_interval: float, idle_interval: float, *, first_max: float = 5.0,
                 backoff: float = 0.25):
        self.busy_interval, self.idle_interval = busy_interval, idle_interval
        self.first_max, self.backoff = first_max, backoff  # 0, 0: every busy_interval from creation
        self.typical: float | None = None  # EWMA: seconds from creation to leaving Scheduling/Pending
        self.last_round = float("-inf")
        self._moving: dict[str, _Moving] = {}

    def first_delay(self) -> float:
        guess = self.busy_interval if self.typical is None else self.typical
        return min(max(guess, 0.0), self.first_max)

    def created(self, group_id: str, now: float) -> None:
        self._moving[group_id] = _Moving(now, True, now, now + self.first_delay())

    def seen(self, group_id: str, status: str | None, moving: bool, now: float, took: float | None = None) -> None:
        """A describe (by id or in a sweep) saw the group with `status`; `moving`: not
        settled; `took`: the cloud's seconds from its creation to running (cloud_took)."""
        entry = self._moving.get(group_id)
        if entry is not None and entry.created and status not in STARTING:
            self._learn(now - entry.since, entry.seen - entry.since if entry.seen > entry.since else None, took)
        if not moving:
            self._moving.pop(group_id, None)
            return
        if entry is None or (entry.created and status not in STARTING):
            entry = self._moving[group_id] = _Moving(now, False, now, now)
        entry.seen = now
        floor = entry.since + self.first_delay() if entry.created else now
        entry.due = max(floor, now + self._again(now - entry.since))

    def _again(self, age: float) -> float:
        return min(max(self.busy_interval, age * self.backoff), max(self.idle_interval, self.busy_interval))

    def _learn(self, hi: float, lo: float | None, took: float | None) -> None:
        if took is not None and took + 1 < hi:  # the cloud says: out well before the look
            sample = max(took, lo or 0.0)
        elif lo is None:  # the first look found it out: quicker, by how much unknown
            sample = hi - self.busy_interval
        else:  # out between the last two looks
            sample = hi - min(hi - lo, self.busy_interval) / 2
        if self.typical is None:
            self.typical = sample
        else:
            self.typical += (ALPHA_DOWN if sample < self.typical else ALPHA_UP) * (sample - self.typical)

    def soon(self, group_id: str, now: float) -> None:
        """Describe the group in the next round (set moving by the caller: an update sent)."""
        self._moving[group_id] = _Moving(now, False, now, now)

    def keep(self, group_ids: set[str]) -> None:
        """Only these groups exist (a sweep's finding): the others are described no more."""
        for gone in set(self._moving) - group_ids:
            del self._moving[gone]

    def forget(self, group_id: str) -> None:
        self._moving.pop(group_id, None)

    def moving(self) -> list[str]:
        return list(self._moving)

    def next_round(self) -> float | None:
        """When the next describe round is due (None: nothing moving)."""
        if not self._moving:
            return None
        return max(min(e.due for e in self._moving.values()), self.last_round + self.busy_interval)

    def take_round(self, now: float) -> list[list[str]]:
        """The id lists to describe now (none if no round is due); marks the round."""
        due_at = self.next_round()
        if due_at is None or due_at > now:
            return []
        self.last_round = now
        order = sorted(self._moving, key=lambda gid: self._moving[gid].due)
        due = [gid for gid in order if self._moving[gid].due <= now]
        calls = -(-len(due) // PAGE)
        ids = order[:calls * PAGE]
        return [ids[i:i + PAGE] for i in range(0, len(ids), PAGE)]


def cloud_took(group: dict) -> float | None:
    """Seconds from the group's CreationTime to its last container's StartTime, as the
    cloud wrote them (whole seconds, one clock: no skew); None if it has no such times."""
    starts = [((c.get("CurrentState") or {}).get("StartTime")) for c in group.get("Containers") or []]
    created = _seconds(group.get("CreationTime"))
    times = [_seconds(t) for t in starts]
    if created is None or not times or None in times:
        return None
    return max(max(times) - created, 0.0)


def _seconds(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
