"""Keeps each tenant pod bound to this node and its SandboxPod in step, both ways.

Level-triggered: every event of either side only queues the SandboxPod name, and one
`reconcile` looks at both cached objects and does the next step. So a restart, a missed
event or a relist all converge the same way, and nothing polls.

    tenant pod bound, no SandboxPod        -> resolve env, create it (409 with our pod uid = done)
    both exist                             -> carry the SandboxPod status to the pod
    pod terminating                        -> delete the SandboxPod; once gone, delete the pod (grace 0)
    SandboxPod of another pod uid / no pod -> delete it (orphan)
    SandboxPod vanished under a live pod   -> pod Failed, SandboxLost
    config error, nothing ever started     -> env resolved anew; if it differs, the SandboxPod
                                              is made again (the kubelet retries with the pod
                                              as it is now)
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Mapping

from ..mapping import deadline, with_provider
from ..mapping.envresolve import ConfigError, referenced_sources, resolve_env
from ..mapping.serviceenv import service_env_of
from ...kubeclient.events import EventRecorder
from ...kubeclient.informer import Informer
from ...kubeclient.client import MERGE, ApiError, KubeClient
from ...kubeclient.runner import Runner
from ..mapping.quota import is_terminal
from ... import API_VERSION
from ...models.contracts import ANNOTATION_DELETION_GRACE
from ..mapping.spec import (build_sandboxpod, container_images, dropped_fields, ephemeral_containers, pod_uid_of,
                   sandboxpod_name)
from ..mapping.podstatus import config_error_before_start, environment_of, lost_status, pod_status_from_sandbox
from .statussync import Conflict, StatusWriter
from ..mapping.volumes import VolumeError
from .volumesync import VolumeSync

log = logging.getLogger(__name__)
WORKERS = 16
COMPONENT = "sk8s-virtual-node"
CONFIG_RETRY_MAX = 10.0   # a missing Secret is usually created moments later
REJECTED_RETRY_MAX = 60.0
REPLACE_INTERVAL = 10.0  # seconds between two SandboxPods made again for one pod's config error
SERVICES_SYNC_WAIT = 5.0  # then CreateContainerConfigError with the kubelet's message, and retries


def _deleting(obj: dict | None) -> bool:
    return bool(obj and obj["metadata"].get("deletionTimestamp"))


def _ever_ran(pod: dict) -> bool:
    st = pod.get("status") or {}
    return bool(st.get("podIP")) or st.get("phase") == "Running" or any(
        c.get("containerID") for c in st.get("containerStatuses") or [])


class PodSync:
    def __init__(self, *, tenant: KubeClient, meta: KubeClient, pods: Informer, sandboxes: Informer,
                 configmaps: Informer, secrets: Informer, events: EventRecorder, node_name: str,
                 meta_namespace: str, cluster: str, cluster_uid: str, allocatable: dict[str, str],
                 services: Informer | None = None, nodes: Mapping[str, dict[str, str]] | None = None,
                 provider: str = "local"):
        """`nodes`: every Node of this process and its allocatable (the downward API's default
        limits), when it registers several; else `node_name` with `allocatable`."""
        self.tenant = tenant
        self.provider = provider  # the cluster's: its sandboxes are that provider's
        self.services = services  # read for the pods' service variables (started by the VirtualNode)
        self.meta = meta
        self.pods = pods
        self.sandboxes = sandboxes
        self.events = events
        self.node_name = node_name
        self.meta_namespace = meta_namespace
        self.cluster = cluster
        self.cluster_uid = cluster_uid
        self.allocatable = allocatable
        self.nodes = dict(nodes or {node_name: allocatable})
        self.status = StatusWriter(tenant, pods)
        # Its reconcile decides when a key's back-off ends (queue.forget): a missing Secret
        # retries with growing delays through passes that themselves succeed.
        self.runner = Runner("pod sync", self.reconcile, workers=WORKERS, forget_on_success=False, soon=(Conflict,))
        self.queue = self.runner.queue
        self.pod_keys: dict[str, tuple[str, str]] = {}  # SandboxPod name -> (namespace, name) of its pod
        self.lost: set[str] = set()                      # pod uids whose SandboxPod vanished
        self._config_errors: dict[str, str] = {}         # pod uid -> message last logged
        self.replacing: dict[str, float] = {}            # pod uid -> when its SandboxPod was deleted to be made again
        self.sbp_path = f"/apis/{API_VERSION}/namespaces/{meta_namespace}/sandboxpods"
        self.volumes = VolumeSync(tenant=tenant, meta=meta, configmaps=configmaps, secrets=secrets,
                                  meta_namespace=meta_namespace, node_name=node_name, allocatable=allocatable,
                                  nodes=self.nodes,
                                  requeue=self.queue.add, requeue_after=self.queue.add_after)
        pods.handlers.append(self.on_pod)
        sandboxes.handlers.append(self.on_sandbox)

    # --- informer callbacks (synchronous: they only queue work) --------------------
    def on_pod(self, kind: str, pod: dict, old: dict | None) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") not in self.nodes:
            return
        name = sandboxpod_name(meta["namespace"], meta["name"])
        if kind == "DELETED":
            if self.pod_keys.get(name) == (meta["namespace"], meta["name"]):
                self.pod_keys.pop(name, None)
            self.lost.discard(meta["uid"])
            self._config_errors.pop(meta["uid"], None)
            self.replacing.pop(meta["uid"], None)
            self.events.forget(meta["uid"])
            self.volumes.track(name, None)
        else:
            self.pod_keys[name] = (meta["namespace"], meta["name"])
            self.volumes.track(name, pod)
        self.queue.add(name)

    def on_sandbox(self, kind: str, sbp: dict, old: dict | None) -> None:
        name = sbp["metadata"]["name"]
        if kind == "DELETED":
            pod = self.pod_for(name)
            if (pod and pod["metadata"]["uid"] == pod_uid_of(sbp) and not _deleting(pod)
                    and not is_terminal(pod) and pod["metadata"]["uid"] not in self.replacing):
                self.lost.add(pod["metadata"]["uid"])
        self.queue.add(name)

    def pod_for(self, sbp_name: str) -> dict | None:
        key = self.pod_keys.get(sbp_name)
        pod = self.pods.get(key) if key else None
        if pod is None or (pod.get("spec") or {}).get("nodeName") not in self.nodes:
            return None
        return pod

    # --- workers ---------------------------------------------------------------------
    async def run(self) -> None:
        await self.runner.run()

    async def reconcile(self, name: str) -> None:
        pod = self.pod_for(name)
        sbp = self.sandboxes.get(name)
        if pod is None:
            if sbp is not None and not _deleting(sbp):
                log.info("deleting orphaned SandboxPod %s (its pod is gone)", name)
                await self._delete_sandbox(sbp)
            if sbp is None:
                await self.volumes.discard(name)
            self.queue.forget(name)
            return
        uid = pod["metadata"]["uid"]
        if sbp is not None and pod_uid_of(sbp) != uid:
            # Left by an earlier pod of the same name: it must go before ours can exist.
            if not _deleting(sbp):
                log.info("deleting SandboxPod %s of an earlier pod %s", name, pod_uid_of(sbp))
                await self._delete_sandbox(sbp)
            return
        if _deleting(pod):
            await self._finish_deletion(pod, sbp)
            return
        if sbp is None:
            await self._without_sandbox(name, pod)
            return
        self.queue.forget(name)
        if _deleting(sbp):
            return  # being removed (pod deleted meanwhile, or by hand): the DELETED event follows
        if await self._past_deadline(name, pod, sbp):
            return
        if await self._replaced_for_config(name, pod, sbp):
            return
        await self.volumes.sync(pod, sbp, lambda reason, msg: self.events.emit(pod, "Warning", reason, msg))
        sbp = await self._sync_ephemeral(name, pod, sbp)
        sbp = await self._sync_images(name, pod, sbp)
        await self.status.write(pod, pod_status_from_sandbox(pod, sbp))

    # --- steps -------------------------------------------------------------------------
    async def _without_sandbox(self, name: str, pod: dict) -> None:
        meta = pod["metadata"]
        if is_terminal(pod):
            return  # finished: nothing runs, and nothing should be started again
        if await self._ended_by_deadline(pod):
            return
        if await self._reported_lost(name, pod):
            return
        try:
            service_env = await self._service_env(pod)
            env = await self._environment(pod, service_env)
            content = await self.volumes.content(pod)
        except VolumeError as err:
            await self._mount_error(name, pod, str(err))
            return
        except ConfigError as err:
            await self._config_error(name, pod, str(err), CONFIG_RETRY_MAX)
            return
        body = with_provider(build_sandboxpod(pod, namespace=self.meta_namespace, cluster=self.cluster,
                                              cluster_uid=self.cluster_uid, env=env, service_env=service_env),
                             self.provider)
        if content is not None:
            # Before the SandboxPod, so that the provider finds the files; owned by it right after.
            await self.volumes.write(name, content, body["metadata"]["labels"])
        try:
            created = await self.meta.create(self.sbp_path, body)
        except ApiError as exc:
            if exc.status == 409:
                existing = await self.meta.get_or_none(f"{self.sbp_path}/{name}")
                if existing is None:
                    self.queue.add_after(name, 0.2)
                    return
                self.sandboxes.put_if_newer(existing)
                if pod_uid_of(existing) != meta["uid"]:
                    self.queue.add(name)  # stale: reconcile deletes it
                    return
                created = existing  # ours, from before a restart
            elif exc.status in (400, 403, 422):
                await self._config_error(name, pod, f"the sandbox rejected this pod: {exc.message}",
                                         REJECTED_RETRY_MAX)
                return
            else:
                raise
        else:
            self.sandboxes.put_if_newer(created)
            self._config_errors.pop(meta["uid"], None)
            self.replacing.pop(meta["uid"], None)
            if content is not None:
                await self.volumes.write(name, content, body["metadata"]["labels"], owner=created)
            log.info("pod %s/%s -> SandboxPod %s/%s", meta["namespace"], meta["name"], self.meta_namespace, name)
            dropped = dropped_fields(pod)
            if dropped:
                self.events.emit(pod, "Warning", "UnsupportedPodFields",
                                 f"sk8s runs this pod without: {'; '.join(dropped)}")
        self.queue.forget(name)
        await self.status.write(pod, pod_status_from_sandbox(pod, created))

    async def _reported_lost(self, name: str, pod: dict) -> bool:
        """A pod whose SandboxPod vanished after it ran (or under it) is Failed, SandboxLost;
        not one whose SandboxPod `_replaced_for_config` deleted to make it again."""
        meta = pod["metadata"]
        if meta["uid"] in self.replacing or not (meta["uid"] in self.lost or _ever_ran(pod)):
            return False
        msg = f"sandbox {name} of this pod no longer exists in the meta-cluster"
        log.warning("pod %s/%s: %s; marking it Failed", meta["namespace"], meta["name"], msg)
        self.events.emit(pod, "Warning", "SandboxLost", msg)
        await self.status.write(pod, lost_status(pod, msg))
        self.lost.discard(meta["uid"])
        return True

    async def _replaced_for_config(self, name: str, pod: dict, sbp: dict) -> bool:
        """A container the sandbox cannot create for its configuration (say a subPathExpr
        that expands to an absolute path because an annotation it reads is missing), in a
        pod none of whose containers ever started: the kubelet retries with the pod as it is
        now, so the environment is resolved again, and if it differs from the SandboxPod's
        (the annotation added since), the SandboxPod is deleted and made again. At most once
        per REPLACE_INTERVAL for a pod."""
        uid = pod["metadata"]["uid"]
        if not config_error_before_start(sbp) or is_terminal(pod) \
                or time.monotonic() - self.replacing.get(uid, -REPLACE_INTERVAL) < REPLACE_INTERVAL:
            return False
        try:
            service_env = await self._service_env(pod)
            env = await self._environment(pod, service_env)
        except ConfigError:
            return False
        wanted = build_sandboxpod(pod, namespace=self.meta_namespace, cluster=self.cluster,
                                  cluster_uid=self.cluster_uid, env=env, service_env=service_env)["spec"]
        if environment_of(wanted) == environment_of(sbp.get("spec") or {}):
            return False
        meta = pod["metadata"]
        log.info("pod %s/%s: its environment changed while a container waits on its configuration; "
                 "making its SandboxPod again", meta["namespace"], meta["name"])
        self.replacing[uid] = time.monotonic()
        await self._delete_sandbox(sbp, grace=0)
        return True

    async def _past_deadline(self, name: str, pod: dict, sbp: dict) -> bool:
        """spec.activeDeadlineSeconds (mapping/deadline.py), read anew on every pass since a
        user may shorten it: past it, the sandbox is killed with the pod's grace period and
        its deletion ends the pod (`_without_sandbox`); before it, a pass is due then."""
        left = deadline.seconds_left(pod, time.time())
        if left is None or is_terminal(pod):
            return False
        if left > 0:
            self.queue.add_after(name, left)
            return False
        meta = pod["metadata"]
        log.info("pod %s/%s: past its active deadline; killing it", meta["namespace"], meta["name"])
        self.events.emit(pod, "Normal", deadline.REASON, deadline.MESSAGE)
        await self._delete_sandbox(sbp)
        return True

    async def _ended_by_deadline(self, pod: dict) -> bool:
        """Killed for its deadline (`_past_deadline`), or past it before it got to run: Failed."""
        left = deadline.seconds_left(pod, time.time())
        if left is None or left > 0:
            return False
        self.events.emit(pod, "Normal", deadline.REASON, deadline.MESSAGE)
        await self.status.write(pod, lost_status(pod, deadline.MESSAGE, reason=deadline.REASON,
                                                 container=(deadline.UNKNOWN_REASON, deadline.UNKNOWN_MESSAGE)))
        self.lost.discard(pod["metadata"]["uid"])
        return True

    async def _sync_ephemeral(self, name: str, pod: dict, sbp: dict) -> dict:
        """Ephemeral containers added to the pod (`kubectl debug`) appended to the SandboxPod,
        whose operator runs them in the sandbox; a refusal is a Warning event on the pod."""
        if ephemeral_containers(pod, sbp, {}) is None:
            return sbp  # nothing new (the common case): no environment to resolve
        try:
            service_env = await self._service_env(pod)
            env = await self._environment(pod, service_env)
        except ConfigError as err:
            self.events.emit(pod, "Warning", "Failed", f"Error: ephemeral containers: {err}")
            return sbp
        wanted = ephemeral_containers(pod, sbp, env, service_env)
        if wanted is None:
            return sbp
        try:
            patched = await self.meta.patch(f"{self.sbp_path}/{name}", {"ephemeralContainers": wanted}, MERGE)
        except ApiError as exc:
            if exc.status not in (400, 403, 422):
                raise
            self.events.emit(pod, "Warning", "Failed", f"Error: the sandbox rejected the ephemeral containers: "
                                                       f"{exc.message}")
            return sbp
        self.sandboxes.put_if_newer(patched)
        return patched

    async def _sync_images(self, name: str, pod: dict, sbp: dict) -> dict:
        """A container's image changed in the pod (`kubectl set image`): the SandboxPod's
        containerImages say so, and its operator restarts that container with the new image."""
        wanted = container_images(pod, sbp)
        if wanted is None or is_terminal(pod):
            return sbp
        try:
            patched = await self.meta.patch(f"{self.sbp_path}/{name}", {"containerImages": wanted}, MERGE)
        except ApiError as exc:
            if exc.status not in (400, 403, 422):
                raise
            self.events.emit(pod, "Warning", "Failed", f"Error: the sandbox rejected the new image: {exc.message}")
            return sbp
        self.sandboxes.put_if_newer(patched)
        return patched

    async def _service_env(self, pod: dict) -> dict[str, str]:
        """The pod's service variables, from the Services as they are now (the kubelet reads
        them as it creates a container), once the Service cache is complete."""
        if self.services is None:
            return {}
        try:
            await asyncio.wait_for(self.services.synced.wait(), SERVICES_SYNC_WAIT)
        except asyncio.TimeoutError:
            raise ConfigError("services have not yet been read at least once, cannot construct envvars") from None
        return service_env_of(self.services.items(), pod)

    async def _environment(self, pod: dict, service_env: dict[str, str] | None = None) -> dict[str, list[dict]]:
        ns = pod["metadata"]["namespace"]
        secret_names, cm_names = referenced_sources(pod)
        secrets = {n: await self.tenant.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{n}") for n in secret_names}
        configmaps = {n: await self.tenant.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{n}")
                      for n in cm_names}
        env: dict[str, list[dict]] = {}
        spec = pod.get("spec") or {}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) + \
                (spec.get("ephemeralContainers") or []):
            values, skipped = resolve_env(pod, c, secrets=secrets, configmaps=configmaps, node_name=self.node_name,
                                          allocatable=self.nodes.get(spec.get("nodeName"), self.allocatable),
                                          service_env=service_env)
            env[c["name"]] = values
            for message in skipped:
                self.events.emit(pod, "Warning", "InvalidEnvironmentVariableNames", message)
        return env

    async def _mount_error(self, name: str, pod: dict, message: str) -> None:
        """As a kubelet whose volume cannot be set up: ContainerCreating, a FailedMount event, retries."""
        meta = pod["metadata"]
        delay = self.queue.retry(name, max_delay=CONFIG_RETRY_MAX)
        log.debug("pod %s/%s: %s (retrying in %.1fs)", meta["namespace"], meta["name"], message, delay)
        self.events.emit(pod, "Warning", "FailedMount", message)
        await self.status.write(pod, pod_status_from_sandbox(pod, None))

    async def _config_error(self, name: str, pod: dict, message: str, max_delay: float) -> None:
        meta = pod["metadata"]
        delay = self.queue.retry(name, max_delay=max_delay)
        if self._config_errors.get(meta["uid"]) != message:
            self._config_errors[meta["uid"]] = message
            log.info("pod %s/%s: %s (retrying with back-off)", meta["namespace"], meta["name"], message)
        log.debug("pod %s/%s: %s (retrying in %.1fs)", meta["namespace"], meta["name"], message, delay)
        self.events.emit(pod, "Warning", "Failed", f"Error: {message}")
        await self.status.write(pod, pod_status_from_sandbox(pod, None, config_error=message))

    async def _delete_sandbox(self, sbp: dict, grace: int | None = None) -> None:
        meta = sbp["metadata"]
        path = f"{self.sbp_path}/{meta['name']}"
        spec_grace = (sbp.get("spec") or {}).get("terminationGracePeriodSeconds")
        if grace is not None and grace != spec_grace:
            try:
                await self.meta.patch(path, {"metadata": {"annotations": {ANNOTATION_DELETION_GRACE: str(grace)}}},
                                      MERGE)
            except ApiError as exc:
                if exc.status not in (403, 404):
                    raise
                # Without patch rights the spec's grace period applies; deleting matters more.
                log.debug("annotating %s with grace %s: %s", meta["name"], grace, exc)
        try:
            resp = await self.meta.delete(path, grace=grace, uid=meta["uid"])
            if resp.get("kind") == "SandboxPod":
                self.sandboxes.put_if_newer(resp)  # now marked deleting: later passes must not delete again
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    async def _finish_deletion(self, pod: dict, sbp: dict | None) -> None:
        meta = pod["metadata"]
        if sbp is not None:
            if not _deleting(sbp):
                grace = meta.get("deletionGracePeriodSeconds")
                log.info("pod %s/%s terminating: deleting its SandboxPod (grace %ss)", meta["namespace"],
                         meta["name"], grace)
                await self._delete_sandbox(sbp, grace)
            return  # the SandboxPod's DELETED event brings us back
        # The sandbox is gone: the pod can go, as a kubelet finishes it (grace 0).
        try:
            await self.tenant.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", grace=0,
                                     uid=meta["uid"])
            log.info("pod %s/%s deleted", meta["namespace"], meta["name"])
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

