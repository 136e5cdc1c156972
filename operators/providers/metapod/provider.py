"""The metapod provider's lifecycle side: each sandbox is one Pod of the meta-cluster
(podbuild.py), run by the meta-cluster's scheduler and kubelets, which do the kubelet
duties themselves (restarts, probes, init containers, sidecars, events on the Pod).

API cost: one create per sandbox (a 409 is the Pod of an earlier attempt, taken over once
its uid label says it is this sandbox's), one delete, and for state one list+watch of this
installation's sandbox Pods across namespaces (`watch()`, an Informer): `inspect` reads its
cache once it is synced, else GETs the Pod. Content volumes cost one Secret per sandbox
(written in `prepare_volumes`, rewritten in `write_volumes`; the meta kubelet refreshes
the files as it does a Secret's).

Credentials are the operator's own meta-cluster client (operators.kube: its in-cluster
service account, or the kubeconfig it runs with); rights in manifests/sandboxpod-operator.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable

from ... import kube
from ...kubeclient.client import STRATEGIC, ApiError, KubeClient
from ...kubeclient.informer import Informer
from ...models.contracts import LABEL_HOME, LABEL_PROVIDER, LABEL_SANDBOX_UID
from ...models.podspec import PodSpec
from ...models.sandboxpod import EphemeralContainer
from ..errors import ProviderError
from ..lifecycle import SandboxLifecycle, VolumeContent
from ..sandbox import EventSink, SandboxInstance, SandboxRef
from .ephemeral import build_ephemeral
from .events import relay_events
from .netpol import NAME as NETPOL_NAME, build_isolation
from .podbuild import PROVIDER, MetaPlacement, build_files_secret, build_pod, file_key, files_secret_name
from .podstatus import instance_from_pod, ref_from_pod

log = logging.getLogger(__name__)
DELETE_SLACK = 10.0  # seconds past the grace period a delete waits for the Pod to go
DELETE_POLL = 0.5
FIELD_MANAGER = "sk8s-metapod"


def pods_path(namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{scope}/pods" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def secrets_path(namespace: str, name: str | None = None) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")


def provider_error(err: ApiError, what: str) -> ProviderError:
    """The meta apiserver's refusal of a spec (400, 422, a PodSecurity 403) is final; the
    rest (unreachable, throttled, a namespace not there yet) may pass."""
    final = err.status in (400, 422) or (err.status == 403 and "PodSecurity" in err.message)
    return ProviderError(f"{what}: {err}", reason=err.reason or ("Unreachable" if not err.status else "ApiError"),
                         retryable=not final)


class MetaPodProvider(SandboxLifecycle):
    name = PROVIDER

    def __init__(self, placement: MetaPlacement, client: Callable[[], KubeClient] = kube.client, *,
                 events: EventSink | None = None, delete_slack: float = DELETE_SLACK):
        """`events`: where the meta kubelet's container events on the sandbox Pods go (events.py)."""
        self.placement, self._client, self.delete_slack, self.events = placement, client, delete_slack, events
        self._content: dict[SandboxRef, VolumeContent] = {}
        self._informer: Informer | None = None

    @property
    def selector(self) -> str:
        return f"{LABEL_HOME}={self.placement.home_id},{LABEL_PROVIDER}={PROVIDER}"

    # --- the tenant's namespace ---------------------------------------------------------------
    async def isolate_namespace(self, namespace: str) -> None:
        policy = build_isolation(namespace, self.placement)
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{NETPOL_NAME}"
        try:
            await self._client().apply(path, policy, FIELD_MANAGER)
        except ApiError as err:
            raise provider_error(err, f"fencing namespace {namespace} (NetworkPolicy {NETPOL_NAME})") from None

    # --- sandboxes ------------------------------------------------------------------------
    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: VolumeContent) -> None:
        self._content[ref] = content
        await self._put_files(ref, content, labels)

    async def _put_files(self, ref: SandboxRef, content: VolumeContent, labels: dict[str, str]) -> None:
        secret = build_files_secret(ref, content, labels, self.placement.home_id)
        try:
            try:
                await self._client().create(secrets_path(ref.namespace), secret)
            except ApiError as err:
                if err.status != 409:
                    raise
                await self._client().request("PUT", secrets_path(ref.namespace, secret["metadata"]["name"]),
                                             body=secret)
        except ApiError as err:
            raise provider_error(err, f"writing the volume files of {ref.instance_name}") from None

    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        pod = build_pod(ref, spec, labels, self.placement, self._content.get(ref, {}))
        try:
            made = await self._client().create(pods_path(ref.namespace), pod)
        except ApiError as err:
            if err.status != 409:
                raise provider_error(err, f"creating Pod {ref.namespace}/{ref.instance_name}") from None
            made = await self._get(ref)
            if made is None:  # deleted between the two calls: the next attempt makes it
                raise ProviderError(f"Pod {ref.instance_name} is being deleted", reason="Conflict") from None
        self._content.pop(ref, None)
        if self._informer is not None:
            self._informer.put_if_newer(made)
        return made["metadata"]["name"]

    async def _get(self, ref: SandboxRef) -> dict | None:
        """This sandbox's Pod; a Pod of that name that is another's is an error, never taken."""
        try:
            pod = await self._client().get_or_none(pods_path(ref.namespace, ref.instance_name))
        except ApiError as err:
            raise provider_error(err, f"reading Pod {ref.instance_name}") from None
        if pod is not None and ((pod["metadata"].get("labels") or {}).get(LABEL_SANDBOX_UID) != ref.uid):
            raise ProviderError(f"Pod {ref.namespace}/{ref.instance_name} exists and is not this sandbox's",
                                reason="Conflict", retryable=False)
        return pod

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        inf = self._informer
        if inf is not None and inf.synced.is_set() and inf.healthy:
            pod = inf.get((ref.namespace, ref.instance_name))
            if pod is not None and (pod["metadata"].get("labels") or {}).get(LABEL_SANDBOX_UID) != ref.uid:
                pod = None
        else:
            pod = await self._get(ref)
        return instance_from_pod(ref, pod) if pod is not None else None

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        """Delete the Pod (its grace period is the meta kubelet's to honour) and wait for it
        to go, at most the grace period and `delete_slack` more: a node that stopped
        answering would hold it for ever, and the Pod GC of the meta-cluster removes it then."""
        self._content.pop(ref, None)
        client = self._client()
        try:
            await client.delete(secrets_path(ref.namespace, files_secret_name(ref)))
        except ApiError as err:
            if err.status != 404:
                raise provider_error(err, f"deleting the volume files of {ref.instance_name}") from None
        if await self._get(ref) is None:
            return
        try:
            await client.delete(pods_path(ref.namespace, ref.instance_name), grace=grace_seconds)
        except ApiError as err:
            if err.status == 404:
                return
            raise provider_error(err, f"deleting Pod {ref.instance_name}") from None
        deadline = time.monotonic() + grace_seconds + self.delete_slack
        while time.monotonic() < deadline:
            if await client.get_or_none(pods_path(ref.namespace, ref.instance_name)) is None:
                return
            await asyncio.sleep(DELETE_POLL)
        log.warning("Pod %s/%s still terminating after %ss", ref.namespace, ref.instance_name, grace_seconds)

    async def list(self) -> list[SandboxRef]:
        try:
            pods, _ = await self._client().list_all(pods_path(), {"labelSelector": self.selector})
        except ApiError as err:
            raise provider_error(err, "listing sandbox Pods") from None
        refs = {r for r in map(ref_from_pod, pods) if r is not None}
        return sorted(refs, key=lambda r: (r.namespace, r.name))

    # --- in-place changes -----------------------------------------------------------------
    async def change_images(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> list[str]:
        """The meta Pod's images patched (a Pod's one mutable container field): its kubelet
        restarts each container whose image changed."""
        pod = await self._get(ref)
        if pod is None:
            raise ProviderError(f"no Pod for {ref.instance_name}", reason="NotFound")
        patch: dict = {}
        changed: list[str] = []
        for key, containers in (("containers", spec.containers), ("initContainers", spec.initContainers or [])):
            now = {c["name"]: c.get("image") for c in pod["spec"].get(key) or []}
            diff = [{"name": c.name, "image": c.image} for c in containers if c.name in now and now[c.name] != c.image]
            if diff:
                patch[key] = diff
                changed += [d["name"] for d in diff]
        if patch:
            try:
                await self._client().patch(pods_path(ref.namespace, ref.instance_name), {"spec": patch}, STRATEGIC)
            except ApiError as err:
                raise provider_error(err, f"changing the images of {ref.instance_name}") from None
        return sorted(changed)

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        """The files rewritten in the Secret; the meta kubelet brings them to the sandbox.
        The files each volume has are fixed by the Pod's items: a file added to a volume or
        removed from it after the Pod was made is refused (NotSupported)."""
        pod = await self._get(ref)
        if pod is None:  # not made yet: its create takes these files
            self._content[ref] = content
            return []
        fixed = {v["name"]: sorted((i["key"], i["path"], i.get("mode")) for i in v["secret"].get("items") or [])
                 for v in pod["spec"].get("volumes") or [] if "secret" in v}
        old = await self._client().get_or_none(secrets_path(ref.namespace, files_secret_name(ref)))
        old_data = (old or {}).get("data") or {}
        changed = []
        for vol, files in content.items():
            now = sorted((file_key(vol, p), p, m) for p, (_, m) in files.items())
            if now != fixed.get(vol, []):
                raise ProviderError(f"volume {vol}: its files changed (added, removed or a new mode); the metapod "
                                    "provider cannot change a running Pod's volume layout", reason="NotSupported",
                                    retryable=False)
            secret = build_files_secret(ref, {vol: files}, {}, self.placement.home_id)
            if any(old_data.get(k) != v for k, v in secret["data"].items()):
                changed.append(vol)
        if changed:
            labels = (pod["metadata"].get("labels") or {})
            await self._put_files(ref, content, labels)
        return sorted(changed)

    async def add_ephemeral_container(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                                      container: EphemeralContainer) -> None:
        """`kubectl debug`: the meta Pod's ephemeralcontainers subresource. Idempotent."""
        pod = await self._get(ref)
        if pod is None:
            raise ProviderError(f"no Pod for {ref.instance_name}", reason="NotFound")
        if any(c.get("name") == container.name for c in pod["spec"].get("ephemeralContainers") or []):
            return
        body = {"spec": {"ephemeralContainers": [build_ephemeral(container, spec, ref)]}}
        try:
            await self._client().patch(pods_path(ref.namespace, ref.instance_name, "ephemeralcontainers"), body,
                                       STRATEGIC)
        except ApiError as err:
            raise provider_error(err, f"adding ephemeral container {container.name}") from None

    # --- state changes ----------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[SandboxRef]:
        """Every change of a sandbox Pod of this installation, from one list+watch; with an
        event sink, the kubelet's events on them are relayed meanwhile."""
        queue: asyncio.Queue[SandboxRef] = asyncio.Queue()

        def on_event(kind: str, pod: dict, old: dict | None) -> None:
            ref = ref_from_pod(pod)
            if ref is not None:
                queue.put_nowait(ref)
        self._informer = Informer(self._client(), pods_path(), name="metapod sandboxes",
                                  key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]),
                                  params={"labelSelector": self.selector}, on_event=on_event)
        informer = self._informer
        tasks = [asyncio.create_task(informer.run())]
        if self.events is not None:
            tasks.append(asyncio.create_task(relay_events(self._client(), lambda ns, n: informer.get((ns, n)),
                                                          self.events)))
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            self._informer = None
