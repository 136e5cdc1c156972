"""A GroupBackend whose container groups are real sandboxes on this host: each group runs
as a local-provider sandbox (a podman pod with its small kubelet: init containers,
restarts per RestartPolicy, probes, hooks), in the tenant's VPC network when the group's
tags name a cluster (the tag sk8s.io/cluster-uid is the label the local provider chooses
the VPC by).

The group's PodSpec and volume files come from eci_pod.pod_from_group, run at
CreateContainerGroup (`admit`), so that what the emulator cannot honour is refused by
name there. The sandbox is the one the group's tags name (namespace, name, uid, the
aliyun provider's tags), else one named by the group itself (its name, its id).

A start whose failure may pass (an image not pulled yet, the registry out of reach) leaves
the group Pending, its containers waiting with the failure's reason (ErrImagePull, then
ImagePullBackOff), and is retried with the kubelet's image back-off, as ECI keeps trying;
any other failure fails the start (ScheduleFailed). The group's IntranetIp is its pod's
address, known once the pod exists. Logs are `podman logs` through the local provider's
streaming side, with every DescribeContainerLog option honoured; ExecContainerCommand's
sessions are its `podman exec` sessions.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime

from ...models.contracts import LABEL_CLUSTER, LABEL_CLUSTER_UID, REASON_ERR_IMAGE_PULL, REASON_IMAGE_PULL_BACKOFF
from ...models.contracts import LABEL_SANDBOX_NAME, LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_UID
from ...models.podspec import PodSpec
from ...providers import make_provider, make_streams
from ...providers.aliyun.eci_status import untag_value
from ...providers.errors import ProviderError
from ...providers.lifecycle import SandboxLifecycle
from ...providers.logopts import ContainerLogOpts
from ...providers.sandbox import ContainerInfo, SandboxInstance, SandboxRef
from ...providers.sessions import StdioSession
from ...providers.streaming import SandboxStreams
from . import params as p
from .backends import ContainerState, ContainerStatus, Group, LogOptions
from .eci_pod import pod_from_group
from .local_vpcs import LocalVpcBackend, check_vswitch
from .errors import invalid

log = logging.getLogger(__name__)
PULL_BACKOFF = (10, 20, 40, 80, 160, 300)  # the kubelet's image pull back-off, seconds
DEFAULT_GRACE = 30
RESYNC = 10.0  # seconds: a sandbox is read again at least this often, changed or not
# What a sandbox's identity may look like: its uid names directories on this host.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
STATES = {"waiting": "Waiting", "running": "Running", "terminated": "Terminated"}
OWN_NAMESPACE = "eci"  # the namespace of a group that names no SandboxPod


def _tags(group: Group) -> dict[str, str]:
    """The tags as the provider meant them (a value it escaped, read back)."""
    return {t.get("Key"): untag_value(t.get("Value", "")) for t in group.get("Tag", []) if isinstance(t, dict)}


def ref_of(group: Group) -> SandboxRef:
    """The sandbox the group's tags name (checked by `check_tags`), else the group's own."""
    tags = _tags(group)
    ns, name, uid = (tags.get(k) for k in (LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_NAME, LABEL_SANDBOX_UID))
    if ns and name and uid:
        return SandboxRef(ns, name, uid)
    return SandboxRef(OWN_NAMESPACE, group["ContainerGroupName"], group["ContainerGroupId"])


def check_tags(group: Group) -> None:
    """The tags that name a sandbox are used as names on this host: refused unless empty (no
    cluster, no pod: the aliyun provider tags a group of no cluster with an empty cluster
    uid) or what Kubernetes names are (a namespace and uid a DNS label, a name a DNS subdomain)."""
    rules = ((LABEL_SANDBOX_NAMESPACE, DNS_LABEL), (LABEL_SANDBOX_NAME, DNS_SUBDOMAIN), (LABEL_SANDBOX_UID, DNS_LABEL),
             (LABEL_CLUSTER_UID, DNS_LABEL))
    for i, t in enumerate(group.get("Tag", []), 1):
        for key, pattern in rules:
            value = untag_value(t.get("Value") or "") if isinstance(t, dict) else ""
            if isinstance(t, dict) and t.get("Key") == key and value and not pattern.match(value):
                raise invalid(f"Tag.{i}.Value", f"The tag {key} names a sandbox on this host: a lowercase DNS name.")


def labels_of(group: Group) -> dict[str, str]:
    """The labels the local provider reads: the cluster, whose VPC the sandbox joins."""
    tags = _tags(group)
    labels = {k: tags[k] for k in (LABEL_CLUSTER, LABEL_CLUSTER_UID) if tags.get(k)}
    local = group.get("LocalVpc")
    if local:  # an emulator VSwitch: its VPC's network, whatever the tags say
        labels[LABEL_CLUSTER_UID] = local["Key"]
    return labels


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def state_of(info: ContainerInfo) -> ContainerState:
    state = STATES.get(info.state, "Waiting")
    detail = info.reason or {"Running": "Started", "Waiting": "ContainerCreating"}.get(state, "")
    return ContainerState(state=state, reason=info.reason or "", message=info.message or "", detail_status=detail,
                          exit_code=info.exit_code if state == "Terminated" else None,
                          start_time=_epoch(info.started_at), finish_time=_epoch(info.finished_at))


def status_of(info: ContainerInfo, *, init: bool) -> ContainerStatus:
    """One container as ECI reports it. Ready is the readiness probe's verdict (a running
    container without one is ready); ECI reports an init container never ready."""
    ready = False if init else (info.ready if info.ready is not None else info.state == "running")
    return ContainerStatus(current=state_of(info), previous=state_of(info.last_state) if info.last_state else None,
                           ready=bool(ready), restart_count=info.restart_count)


def statuses_of(inst: SandboxInstance) -> dict[str, ContainerStatus]:
    out = {c.name: status_of(c, init=True) for c in inst.init_containers}
    out.update({c.name: status_of(c, init=False) for c in inst.containers})
    return out


def waiting_statuses(group: Group, err: ProviderError, attempts: int) -> dict[str, ContainerStatus]:
    """Every container waiting on a start that failed and will be tried again."""
    reason = REASON_IMAGE_PULL_BACKOFF if err.reason == REASON_ERR_IMAGE_PULL and attempts > 1 else err.reason
    state = ContainerState(state="Waiting", reason=reason, message=str(err), detail_status=reason)
    return {c.get("Name"): ContainerStatus(current=state)
            for kind in ("InitContainer", "Container") for c in group.get(kind, [])}


@dataclass
class _Run:
    ref: SandboxRef
    spec: PodSpec
    labels: dict[str, str]
    ip: str = ""
    error: ProviderError | None = None  # the last failed start, tried again by `retry`
    attempts: int = 0
    retry: asyncio.Task | None = None
    statuses: dict[str, ContainerStatus] | None = None  # as last read from the provider
    changed: bool = True  # the provider said the sandbox changed since
    read_at: float = 0.0


class PodmanBackend:
    def __init__(self, provider: SandboxLifecycle | None = None, streams: SandboxStreams | None = None):
        self.provider = provider or make_provider("local")
        self.streams = streams or make_streams("local")
        self._runs: dict[str, _Run] = {}  # group id -> its sandbox
        self._setup: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None

    @classmethod
    def for_home(cls) -> PodmanBackend:
        """The sandboxes of this installation ($SK8S_HOME), as its own local provider makes
        them: the same networks, so a group of a tenant cluster joins that tenant's VPC."""
        return cls(make_provider("local"), make_streams("local"))

    # -- the protocol ---------------------------------------------------------------------

    def admit(self, group: Group) -> None:
        check_tags(group)
        if group.get("LocalVpc"):
            check_vswitch(group["LocalVpc"])
        pod_from_group(group)

    def vpc_backend(self) -> LocalVpcBackend:
        """The emulator's VPCs as this provider's VPC networks (networking.vpc_backend)."""
        return LocalVpcBackend(self)

    async def ready(self) -> None:
        await self._ready()

    def intranet_ip(self, group: Group) -> str | None:
        run = self._runs.get(group.get("ContainerGroupId", ""))
        return run.ip if run else ""

    async def start(self, group: Group) -> str | None:
        await self._ready()
        spec, content = pod_from_group(group)
        ref = ref_of(group)
        if any(r.ref == ref for r in self._runs.values()):  # two groups, one SandboxPod: each its own
            ref = SandboxRef(ref.namespace, ref.name, group["ContainerGroupId"])
        run = self._runs[group["ContainerGroupId"]] = _Run(ref, spec, labels_of(group))
        if spec.volumes:
            await self.provider.prepare_volumes(ref, spec, run.labels, content)
        await self._ensure(run)
        return run.ip or None

    async def state(self, group: Group) -> dict[str, ContainerStatus]:
        """Read again only what the provider said changed (its watch: podman's container
        events, the kubelet's probe results and back-offs), and everything every RESYNC
        seconds: the API asks for every group on each tick."""
        run = self._runs.get(group["ContainerGroupId"])
        if run is None:
            return {}
        if run.error is not None:
            return waiting_statuses(group, run.error, run.attempts)
        now = time.monotonic()
        if run.statuses is None or run.changed or now - run.read_at >= RESYNC:
            run.changed, run.read_at = False, now  # a change while reading marks it again
            inst = await self.provider.inspect(run.ref)
            run.statuses = statuses_of(inst) if inst is not None else {}
            run.ip = (inst.ip if inst else None) or run.ip
        return run.statuses

    async def update(self, group: Group, containers: list[str], volumes: list[str]) -> None:
        """The sandbox takes the change as the local provider takes it from its own
        SandboxPod operator: new files through write_volumes (atomically swapped, no
        restart), new images through change_images (the kubelet restarts those containers)."""
        run = self._runs.get(group["ContainerGroupId"])
        if run is None:
            return  # not started yet: the start runs the group as it is now
        spec, content = pod_from_group(group)
        run.spec = spec
        if volumes:
            await self.provider.write_volumes(run.ref, spec, content)  # every volume: one left out is emptied
        if containers:
            await self.provider.change_images(run.ref, spec, run.labels)
        run.changed = True

    async def delete(self, group: Group) -> None:
        run = self._runs.pop(group["ContainerGroupId"], None)
        if run is None:
            return  # never started: nothing of it exists
        if run.retry is not None:
            run.retry.cancel()
        grace = p.integer(group, "TerminationGracePeriodSeconds", DEFAULT_GRACE, low=0) or 0
        await self.provider.delete(run.ref, grace)

    async def logs(self, group: Group, container: str, opts: LogOptions) -> str:
        run = self._runs.get(group["ContainerGroupId"])
        if run is None or opts.limit_bytes == 0 or opts.since_seconds == 0:
            return ""
        inst = await self.provider.inspect(run.ref)
        infos = (inst.init_containers + inst.containers) if inst else []
        if not any(c.name == container and c.container_id for c in infos):
            return ""  # not created yet: no output, rather than podman's error
        chunks = [chunk async for chunk in self.streams.logs(run.ref, container, ContainerLogOpts(
            tail=opts.tail, timestamps=opts.timestamps, since_seconds=opts.since_seconds,
            limit_bytes=opts.limit_bytes))]
        return b"".join(chunks).decode(errors="replace")

    async def exec(self, group: Group, container: str, command: list[str], *, stdin: bool,
                   tty: bool) -> StdioSession:
        """`podman exec` in the group's sandbox, through the local provider's streaming side
        (the session the virtual node gets for a local sandbox); the command stays data."""
        run = self._runs.get(group["ContainerGroupId"])
        if run is None:
            raise ProviderError(f"the group has no sandbox to run {container} in", reason="NotFound",
                                retryable=False)
        return await self.streams.open_exec_session(run.ref, container, command, stdin=stdin, tty=tty)

    # -- the sandboxes' side ------------------------------------------------------------

    async def _ready(self) -> None:
        """The provider set up once (its networks), and its change watch running: the local
        kubelets learn of their containers' exits from it."""
        if self._setup is None:
            self._setup = asyncio.create_task(self.provider.setup())
        try:
            await asyncio.shield(self._setup)
        except Exception:
            self._setup = None  # the next start tries again
            raise
        if self._watch is None:
            self._watch = asyncio.create_task(self._drain(), name="eci backend watch")

    async def _drain(self) -> None:
        async for ref in self.provider.watch():
            for run in self._runs.values():
                if run.ref == ref:
                    run.changed = True

    async def _ensure(self, run: _Run) -> None:
        try:
            await self.provider.ensure(run.ref, run.spec, run.labels)
        except ProviderError as err:
            if not err.retryable:
                raise
            run.error, run.attempts = err, run.attempts + 1
            log.info("group sandbox %s: %s (trying again)", run.ref.instance_name, err)
            run.retry = asyncio.create_task(self._again(run))
            return
        run.error, run.changed = None, True
        inst = await self.provider.inspect(run.ref)
        run.ip = (inst.ip if inst else None) or run.ip

    async def _again(self, run: _Run) -> None:
        await asyncio.sleep(PULL_BACKOFF[min(run.attempts, len(PULL_BACKOFF)) - 1])
        try:
            await self._ensure(run)
        except ProviderError as err:  # no longer one that may pass: the containers say why
            run.error = err

    async def close(self) -> None:
        tasks = [t for t in (self._watch, *(r.retry for r in self._runs.values())) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

