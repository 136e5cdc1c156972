"""The aliyun provider's lifecycle side: each sandbox is one Elastic Container Instance
(an ECI container group) in the tenant's VSwitch and security group.

ECI runs its containers as a kubelet would (restarts per restartPolicy, probes, init
containers), so this side only creates, reads and deletes groups. What it costs in API
calls, the figure that decides how far it scales:

- create: one `CreateContainerGroup`, with a `ClientToken` from the SandboxPod's uid, so
  a retry after a lost answer never makes a second group;
- status: no call per pod. The groups on their way somewhere (Scheduling, Pending,
  Restarting..., or just created) are described by id, 20 a call, every `busy_interval`;
  every `idle_interval` one sweep lists all groups of this installation by its tag, 20 a
  page (`NextToken`), which sees restarts and failures of running groups and groups gone;
  `watch()` yields the groups whose state changed;
- delete: one `DeleteContainerGroup`, a group already gone counting as deleted.

`inspect` answers from the last sweep; a group created since is reported as being
scheduled until a sweep that began after its creation sees it (or not: then it is gone).
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

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME as TAG_HOME
from ...models.podspec import PodSpec
from ..errors import ProviderError
from ..lifecycle import SandboxLifecycle, VolumeContent
from ..sandbox import SandboxInstance, SandboxRef
from .client import AliyunClient, AliyunError
from .cluster_networks import ClusterNetworks
from .network import list_networks
from .eci_spec import EciPlacement, build_create_params
from .eci_status import instance_from_group, ref_from_tags, tag_value

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
                 idle_interval: float = 5.0):
        self.client, self.placement = client, placement
        self.busy_interval, self.idle_interval = busy_interval, idle_interval
        self._known: dict[SandboxRef, _Known] = {}
        self._content: dict[SandboxRef, VolumeContent] = {}
        self._swept = asyncio.Event()  # one sweep done: `inspect` may say "none"
        self._sweep_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._last_sweep = 0.0
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
        self._content.pop(ref, None)
        self._wake.set()  # a group on its way: sweep soon
        return group_id

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        if not self._swept.is_set():
            await self.sweep()
        known = self._known.get(ref)
        return instance_from_group(ref, known.group) if known else None

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        self._content.pop(ref, None)
        known = self._known.get(ref)
        group_id = known.group["ContainerGroupId"] if known else await self._find(ref)
        if group_id is not None:
            try:
                await self.client.call(DeleteContainerGroupRequest, {"ContainerGroupId": group_id})
            except AliyunError as err:
                if not is_gone(err):
                    raise _provider_error(err) from None
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
            self._known[ref] = _Known(group, created_at=0.0)
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
            self._swept.set()
            self._last_sweep = began
            return changed

    def _moving(self) -> list[str]:
        return [k.group["ContainerGroupId"] for k in self._known.values()
                if k.created_at or k.group.get("Status") in TRANSIENT]

    async def refresh_moving(self) -> list[SandboxRef]:
        """Describe only the groups on their way somewhere, by id, 20 a call: a burst of pods
        costs a call per 20 of them per interval, the groups that run steadily nothing. A
        group missing from the answer is left to the next full sweep to call gone."""
        async with self._sweep_lock:
            ids = self._moving()
            changed: list[SandboxRef] = []
            for i in range(0, len(ids), PAGE):
                answer = await self.client.call(DescribeContainerGroupsRequest, {
                    "RegionId": self.client.region, "ContainerGroupIds": json.dumps(ids[i:i + PAGE]), "Limit": PAGE})
                changed += self._take(answer.get("ContainerGroups") or [])[0]
            return changed

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
        """Polls (ECI pushes nothing): the moving groups every `busy_interval`, every group
        every `idle_interval` (restarts and failures of running groups, groups gone)."""
        while True:
            self._wake.clear()  # before: a create during the sweep wakes the next one
            try:
                due = time.monotonic() - self._last_sweep >= self.idle_interval
                for ref in await (self.sweep() if due or not self._moving() else self.refresh_moving()):
                    yield ref
            except ProviderError as err:
                log.warning("describing container groups failed: %s", err)
            interval = self.busy_interval if self._moving() else self.idle_interval
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except asyncio.TimeoutError:
                pass


def _digest(group: dict) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def _provider_error(err: AliyunError) -> ProviderError:
    """The cloud's code stays the reason; a spec the cloud refuses is not tried again."""
    err.retryable = not err.code.startswith(FINAL_CODES)
    return err
