"""The aliyun provider's lifecycle side: each sandbox is one Elastic Container Instance
(an ECI container group) in the tenant's VSwitch and security group.

ECI runs its containers as a kubelet would (restarts per restartPolicy, probes, init
containers), so this side only creates, reads and deletes groups. What it costs in API
calls, the figure that decides how far it scales:

- create: one `CreateContainerGroup`, with a `ClientToken` from the SandboxPod's uid, so
  a retry after a lost answer never makes a second group;
- status: no call per pod. The groups on their way somewhere (Scheduling, Pending,
  Restarting..., or just created) are described by id, 20 a call, in rounds at most every
  `busy_interval` (describe_pacing.py): a new group first once the time groups typically
  take to leave Scheduling/Pending has passed (learnt from the groups seen, bounded), one
  still moving again after `busy_interval` or a quarter of its time moving if longer, and
  a round fills its calls with the other moving groups. Every `idle_interval` one sweep
  lists all groups of this installation by its tag, 20 a page (`NextToken`), which sees
  restarts and failures of running groups and groups gone; its pages count as describes
  of the moving groups they list, and a sweep coming within a `busy_interval` of a due
  round is made instead of it. No sweep while the rounds describe every known group.
  `watch()` yields the groups whose state changed;
- delete: one `DeleteContainerGroup`, a group already gone counting as deleted;
- in-place changes (eci_update.py): one `UpdateContainerGroup` per image change (the
  containers named restart with their new image) or per change of a ConfigMap's, Secret's
  or downward API volume's files, with a ClientToken of the change.

`inspect` answers from the last describe or sweep; a group created since is reported as
being scheduled until one sees it (a sweep that began after its creation and misses it:
it is gone).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.UpdateContainerGroupRequest import UpdateContainerGroupRequest

from ...aio import wait_event
from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME as TAG_HOME
from ...models.podspec import PodSpec
from ..errors import ProviderError
from ..lifecycle import SandboxLifecycle, VolumeContent
from ..sandbox import SandboxInstance, SandboxRef
from .client import AliyunClient, AliyunError
from .cluster_networks import ClusterNetworks
from .describe_pacing import DescribePacing, cloud_took
from .network import list_networks
from .eci_spec import EciPlacement, build_create_params
from .eci_status import instance_from_group, ref_from_tags, tag_value
from .eci_update import (build_image_update_params, build_volume_update_params, content_volumes, image_changes,
                         volume_digests)

log = logging.getLogger(__name__)

PAGE = 20  # DescribeContainerGroups' largest Limit
TRANSIENT = {"Scheduling", "Pending", "Restarting", "Updating", "Terminating"}
# Codes that no retry can fix: the spec itself is wrong.
FINAL_CODES = ("InvalidParameter", "MissingParameter", "IdempotentParameterMismatch", "InvalidImage")


def is_gone(err: AliyunError) -> bool:
    return "NotFound" in err.code or err.code.endswith("NotExist")


@dataclass
class _Known:
    group: dict
    created_at: float = field(default_factory=time.monotonic)  # by this process; 0: seen in a sweep


class AliyunProvider(SandboxLifecycle):
    name = "aliyun"

    def __init__(self, client: AliyunClient, placement: EciPlacement, *, busy_interval: float = 0.5,
                 idle_interval: float = 5.0, update_wait: float = 60.0):
        self.client, self.placement = client, placement
        self.update_wait = update_wait  # seconds a content update waits for its group to be updatable
        self.busy_interval, self.idle_interval = busy_interval, idle_interval
        self._known: dict[SandboxRef, _Known] = {}
        # Refs whose group changed since the watch last yielded: recorded where a describe
        # is taken in (_take), so a change is reported even when the call that saw it was
        # not the watch's, or the watch's round failed after it.
        self._unreported: set[SandboxRef] = set()
        self._content: dict[SandboxRef, VolumeContent] = {}
        self._files: dict[SandboxRef, dict[str, str]] = {}  # volume -> digest of the files last sent
        self._swept = asyncio.Event()  # one sweep done: `inspect` may say "none"
        self._sweep_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._last_sweep = 0.0
        self._lost = False  # a describe round missed a group: the next sweep says whether it is gone
        self.pacing = DescribePacing(busy_interval, idle_interval)
        self.networks = ClusterNetworks(client, placement.home_id, placement.zone_id)

    # --- shared resources -------------------------------------------------------------
    async def setup(self) -> None:
        """Nothing to wait for: the groups this installation already has are taken over by
        the first sweep (`watch`, or the first `inspect`). An account the cloud refuses (a
        wrong key, a region without ECI) or a cloud out of reach is not fatal either: a
        restart would not fix it; the sweeps log it and each SandboxPod fails with the
        cloud's code in its status and Events."""

    async def ensure_cluster_network(self, cluster_uid: str, cidr: str) -> str | None:
        """The cluster's VPC, VSwitches and security group (network.py); its VPC resolver."""
        return (await self.networks.ensure(cluster_uid, cidr)).resolver

    async def release_cluster(self, cluster_uid: str) -> None:
        """After the cluster's groups are deleted: DependencyViolation (retryable) while they drain."""
        await self.networks.release(cluster_uid)

    async def cluster_networks(self) -> list[str]:
        return list(await list_networks(self.client, self.placement.home_id))

    # --- sandboxes ------------------------------------------------------------------------
    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: VolumeContent) -> None:
        self._content[ref] = content  # sent with the group: ECI's ConfigFileVolume carries the files

    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        known = self._known.get(ref)
        if known is not None:
            return known.group["ContainerGroupId"]
        placement = await self.networks.placement(self.placement, labels.get(LABEL_CLUSTER_UID, ""))
        params = build_create_params(ref, spec, labels, placement, self._content.get(ref, {}))
        try:
            answer = await self.client.call(CreateContainerGroupRequest, params)
        except AliyunError as err:
            if err.code.startswith(("InvalidVSwitchId", "InvalidSecurityGroupId")):
                self.networks.forget(labels.get(LABEL_CLUSTER_UID, ""))  # made anew since: look again
            raise _provider_error(err) from None
        group_id = answer["ContainerGroupId"]
        self._known[ref] = _Known({"ContainerGroupId": group_id, "ContainerGroupName": ref.instance_name,
                                   "Status": "Scheduling", "Containers": []})
        self._files[ref] = volume_digests(spec, self._content.pop(ref, {}))
        self.pacing.created(group_id, time.monotonic())
        self._wake.set()  # a group on its way: the watch plans its first describe
        return group_id

    # --- in-place changes: UpdateContainerGroup ------------------------------------------
    async def change_images(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> list[str]:
        """One UpdateContainerGroup naming the containers whose image changed; ECI restarts
        them (the group goes Updating, then Running). Idempotent: an update already sent
        shows in the next sweep's images, and its token makes a repeat the same update."""
        group = await self._group(ref)
        changes = image_changes(spec, group)
        if changes:  # nothing to change is no error, whatever the group's state
            _check_updatable(group)
            await self._update(ref, build_image_update_params(ref, group["ContainerGroupId"], self.client.region,
                                                              changes))
            known = self._known.get(ref)
            if known is not None:  # as the cloud shows it from now on: a repeat finds nothing to change
                known.group["Containers"] = [{**c, "Image": changes.get(c.get("Name"), c.get("Image"))}
                                             for c in known.group.get("Containers") or []]
        return sorted(changes)

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        """The volumes whose files differ from those last sent, as ConfigFileVolumes again.
        Before the group exists the files wait for its create (prepare_volumes' way)."""
        if ref not in self._known and ref in self._content:
            self._content[ref] = content
            return []
        digests = volume_digests(spec, content)
        sent = self._files.get(ref, {})
        names = [n for n in content_volumes(spec, content) if sent.get(n) != digests.get(n)]
        if not names:
            return []
        # Nobody retries a content change (an event, not a spec diff): wait out a group still
        # being scheduled or updated here, for a while.
        deadline = time.monotonic() + self.update_wait
        while True:
            try:
                group = _check_updatable(await self._group(ref))
                await self._update(ref, build_volume_update_params(ref, group["ContainerGroupId"], self.client.region,
                                                                   spec, content, names))
                break
            except ProviderError as err:
                if not err.retryable or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(self.busy_interval)
            await self.refresh_moving()
        self._files[ref] = {**sent, **{n: digests[n] for n in names}}
        return names

    async def _group(self, ref: SandboxRef) -> dict:
        """The group as last described."""
        if not self._swept.is_set() or ref not in self._known:
            await self.sweep()
        known = self._known.get(ref)
        if known is None:
            raise ProviderError(f"no container group for {ref.instance_name}", reason="NotFound", retryable=True)
        return known.group

    async def _update(self, ref: SandboxRef, params: dict[str, str]) -> None:
        try:
            await self.client.call(UpdateContainerGroupRequest, params)
        except AliyunError as err:
            if err.code.startswith("IncorrectStatus"):
                err.retryable = True  # an update or a restart under way: the group comes back Running
                raise err from None
            raise _provider_error(err) from None
        known = self._known.get(ref)
        if known is not None:  # Updating until a describe says otherwise: polled as a moving group
            known.group = {**known.group, "Status": "Updating"}
        self._wake.set()

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        if not self._swept.is_set():
            await self.sweep()
        known = self._known.get(ref)
        return instance_from_group(ref, known.group) if known else None

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        self._content.pop(ref, None)
        self._files.pop(ref, None)
        known = self._known.get(ref)
        group_id = known.group["ContainerGroupId"] if known else await self._find(ref)
        if group_id is not None:
            try:
                await self.client.call(DeleteContainerGroupRequest, {"ContainerGroupId": group_id})
            except AliyunError as err:
                if not is_gone(err):
                    raise _provider_error(err) from None
            self.pacing.forget(group_id)
        self._known.pop(ref, None)

    async def _find(self, ref: SandboxRef) -> str | None:
        """A group this process has not seen (made by a run that died before answering)."""
        answer = await self.client.call(DescribeContainerGroupsRequest, {
            "RegionId": self.client.region, "ContainerGroupName": ref.instance_name, "Limit": PAGE})
        for group in answer.get("ContainerGroups") or []:
            if ref_from_tags(group.get("Tags") or []) == ref:
                return group["ContainerGroupId"]
        return None

    async def list(self) -> list[SandboxRef]:
        await self.sweep()
        return sorted(self._known, key=lambda r: (r.namespace, r.name))

    # --- the sweep ----------------------------------------------------------------------------
    def _take(self, groups: list[dict]) -> tuple[list[SandboxRef], set[SandboxRef]]:
        """Record groups as described; (refs whose group changed, refs seen)."""
        changed, seen = [], set()
        for group in groups:
            ref = ref_from_tags(group.get("Tags") or [])
            if ref is None:
                continue
            seen.add(ref)
            known = self._known.get(ref)
            if known is None or _digest(known.group) != _digest(group):
                changed.append(ref)
                self._unreported.add(ref)
            self._known[ref] = _Known(group, created_at=0.0)
            status = group.get("Status")
            self.pacing.seen(group["ContainerGroupId"], status, status in TRANSIENT, time.monotonic(),
                             cloud_took(group))
        return changed, seen

    async def sweep(self) -> list[SandboxRef]:
        """List every group of this installation; the refs whose group changed or went."""
        async with self._sweep_lock:
            began = time.monotonic()
            changed, seen = self._take(await self._list_groups())
            for ref, known in list(self._known.items()):
                if ref not in seen and known.created_at < began:  # gone (a sweep that began later missed it)
                    del self._known[ref]
                    changed.append(ref)
                    self._unreported.add(ref)
            self.pacing.keep({k.group["ContainerGroupId"] for k in self._known.values()})
            self._swept.set()
            self._last_sweep, self._lost = began, False
            return changed

    def _moving(self) -> list[str]:
        """The groups the rounds describe; a group marked moving here (an update sent) joins them."""
        now, moving = time.monotonic(), set(self.pacing.moving())
        for known in self._known.values():
            if known.group.get("Status") in TRANSIENT and known.group["ContainerGroupId"] not in moving:
                self.pacing.soon(known.group["ContainerGroupId"], now)
        return self.pacing.moving()

    async def refresh_moving(self) -> list[SandboxRef]:
        """Describe the moving groups whose time has come (describe_pacing), by id, 20 a
        call: a burst of pods costs a call per 20 of them per round, the groups that run
        steadily nothing. A group missing from the answer is left to the next full sweep
        to call gone (a group just made may not be listed yet)."""
        async with self._sweep_lock:
            self._moving()
            changed: list[SandboxRef] = []
            for ids in self.pacing.take_round(time.monotonic()):
                answer = await self.client.call(DescribeContainerGroupsRequest, {
                    "RegionId": self.client.region, "ContainerGroupIds": json.dumps(ids), "Limit": PAGE})
                groups = answer.get("ContainerGroups") or []
                changed += self._take(groups)[0]
                self._lost |= len(groups) < len(ids)
            return changed

    def _covered(self) -> bool:
        """Every known group is moving and the rounds find them all: a sweep would tell nothing."""
        moving = set(self._moving())
        return not self._lost and all(k.group["ContainerGroupId"] in moving for k in self._known.values())

    async def poll(self) -> list[SandboxRef]:
        """What is due now: a sweep (early, instead of a round due within a `busy_interval`
        of it), else a describe round; the refs whose group changed."""
        now = time.monotonic()
        sweep_at = self._last_sweep + self.idle_interval
        self._moving()
        round_at = self.pacing.next_round()
        if round_at is not None and round_at <= now and sweep_at - self.busy_interval <= now:
            sweep_at = now
        if sweep_at <= now:
            if not self._covered() or not self._swept.is_set():
                return await self.sweep()
            self._last_sweep = now
        return await self.refresh_moving()

    def _next_poll(self) -> float:
        """Seconds until `poll` has something to do."""
        due = self._last_sweep + self.idle_interval
        self._moving()
        round_at = self.pacing.next_round()
        if round_at is not None:
            due = min(due, round_at)
        return max(due - time.monotonic(), 0.0)

    async def _list_groups(self) -> list[dict]:
        params = {"RegionId": self.client.region, "Limit": PAGE, "Tag.1.Key": TAG_HOME,
                  "Tag.1.Value": tag_value(self.placement.home_id)}
        groups: list[dict] = []
        token = None
        while True:
            answer = await self.client.call(DescribeContainerGroupsRequest, {**params, "NextToken": token})
            groups += answer.get("ContainerGroups") or []
            token = answer.get("NextToken")
            if not token:
                return groups

    async def watch(self) -> AsyncIterator[SandboxRef]:
        """Polls (ECI pushes nothing): the moving groups as `poll` paces them, every group
        every `idle_interval` (restarts and failures of running groups, groups gone). A
        create wakes it to plan the new group's first describe."""
        while True:
            self._wake.clear()  # before: a create during the poll is planned for
            failed = False
            try:
                await self.poll()
            except Exception as err:  # noqa: BLE001 - the watch must outlive any one poll
                failed = True
                if isinstance(err, ProviderError):
                    log.warning("describing container groups failed: %s", err)
                else:
                    log.exception("polling container groups failed")
            # Every change recorded since the last turn, by whichever call recorded it: a
            # round failing after its first call, an inspect's or a volume update's describe.
            unreported, self._unreported = self._unreported, set()
            for ref in sorted(unreported, key=lambda r: (r.namespace, r.name)):
                yield ref
            if failed:  # not at once again (a failed sweep is still due): as often as the groups need
                await asyncio.sleep(self.busy_interval if self._moving() else self.idle_interval)
            await wait_event(self._wake, self._next_poll())


def _check_updatable(group: dict) -> dict:
    """The cloud updates only a Pending or Running group; one on its way there (Updating,
    Restarting, Scheduling) will be, later."""
    status = group.get("Status")
    if status not in ("Pending", "Running"):
        raise ProviderError(f"the container group is {status}: ECI updates only a Pending or Running one",
                            reason="IncorrectStatus", retryable=status in TRANSIENT)
    return group


def _digest(group: dict) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def _provider_error(err: AliyunError) -> ProviderError:
    """The cloud's code stays the reason; a spec the cloud refuses is not tried again."""
    err.retryable = not err.code.startswith(FINAL_CODES)
    return err
