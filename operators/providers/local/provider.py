"""The local provider's lifecycle side: each sandbox is a podman pod run by runc on this host.

Containers of a pod share its network namespace (own IP on a bridge network: the admins'
or the tenant's VPC, networks.py), cpu and memory limits come from `resources`. A small
kubelet per pod (`kubelet/`) runs init containers, restarts containers per restartPolicy
with back-off and runs probes, on the podman runtime (runtime.py), reporting events to
the sink given here. State changes are pushed by `podman events`, so status follows
within milliseconds and nothing polls. Volumes: podvolumes.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import AsyncIterator

from ...models.contracts import LABEL_CONTAINER, LABEL_HOME
from ...models.podspec import PodSpec
from ...models.sandboxpod import EphemeralContainer
from ..lifecycle import SandboxLifecycle, VolumeContent
from ..sandbox import EventSink, SandboxInstance, SandboxRef
from . import firewall, nft
from .kubelet import ephemeral
from .kubelet.worker import PodWorker
from .networks import LocalNetworks
from .podman import Podman
from .podvolumes import PodVolumes
from .runtime import PodmanRuntime
from .spec import dns_args
from .status import ref_from_labels
from .vpc import LocalVpcs

log = logging.getLogger(__name__)


class LocalProvider(SandboxLifecycle):
    name = "local"

    def __init__(self, *, home_id: str, containers_conf: str, network: str | None = None,
                 subnet: str | None = None, state_dir: Path | None = None, events: EventSink | None = None):
        self.home_id = home_id
        self.podman = Podman(containers_conf)
        self.vpcs = LocalVpcs(self.podman, home_id)
        self.networks = LocalNetworks(self.podman, self.vpcs, home_id=home_id,
                                      network=network or f"sk8s-{home_id}", subnet=subnet)
        self.runtime = PodmanRuntime(self.podman)
        self.volumes = PodVolumes(self.podman, self.networks, home_id=home_id)
        self.state_dir = state_dir
        self.events = events  # the kubelet's events (Unhealthy, BackOff, Killing...)
        self._workers: dict[SandboxRef, PodWorker] = {}
        self._changes: asyncio.Queue[SandboxRef] = asyncio.Queue()

    # --- shared resources -------------------------------------------------------
    async def setup(self) -> None:
        self.runtime.host_ip = await self.networks.setup()

    async def release_cluster(self, cluster_uid: str) -> None:
        await self.networks.release_cluster(cluster_uid)

    async def reserve_network(self, owner: str) -> str | None:
        return str(await self.vpcs.reserve(owner))

    async def release_network(self, cidr: str) -> None:
        self.vpcs.release_hold(cidr)

    async def ensure_cluster_network(self, cluster_uid: str, cidr: str) -> str | None:
        return (await self.vpcs.ensure(cluster_uid, cidr)).layout.resolver

    async def teardown(self) -> None:
        """Remove every sandbox and network of this installation."""
        limit = asyncio.Semaphore(8)

        async def remove(ref: SandboxRef) -> None:
            async with limit:
                await self.delete(ref, 0)
        await asyncio.gather(*(remove(ref) for ref in await self.list()))
        # VPC anchor pods (the tenants' service addresses) go with their networks.
        pods = await self.podman.json("pod", "ps", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        for pod in pods if isinstance(pods, list) else []:
            await self.podman.run("pod", "rm", "--force", "--time=0", pod.get("Id") or pod.get("Name"), check=False)
        await firewall.release(f"sk8s:{self.home_id}:")
        # The load balancers' rules on the host (those in VPC anchors went with the anchors).
        await nft.drop_tables(await nft.tables(f"sk8s-lb-{self.home_id}-"))
        nets = await self.podman.json("network", "ls", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        for net in nets if isinstance(nets, list) else []:
            await self.podman.run("network", "rm", "--force", net.get("name") or net.get("Name"), check=False)

    # --- sandboxes --------------------------------------------------------------
    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        """Optimistic and idempotent: podman's unique names reject duplicates, so no listing first."""
        labels = {**labels, LABEL_HOME: self.home_id}
        worker = await self._worker(ref, spec, labels)
        await worker.start()
        return ref.instance_name

    async def _worker(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> PodWorker:
        worker = self._workers.get(ref)
        if worker is None:
            labels = {**labels, LABEL_HOME: self.home_id}
            network, resolver = await self.networks.network_for(labels)
            worker = self._workers.get(ref)  # created by a concurrent call meanwhile?
            if worker is None:
                state = self.state_dir / f"{ref.uid}.json" if self.state_dir else None
                worker = PodWorker(self.runtime, ref, spec, network=network, labels=labels,
                                   dns=dns_args(spec, resolver), state_file=state, events=self.events,
                                   changed=self._changes.put_nowait)
                self._workers[ref] = worker
        return worker

    async def add_ephemeral_container(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                                      container: EphemeralContainer) -> None:
        await (await self._worker(ref, spec, labels)).add_ephemeral(container)

    async def resume(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> None:
        worker = await self._worker(ref, spec, labels)
        worker.resume()
        await worker.change_images(spec)  # one the restart interrupted

    async def change_images(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> list[str]:
        return await (await self._worker(ref, spec, labels)).change_images(spec)

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        inst = await self.runtime.inspect_pod(ref)
        return self._with_kubelet(inst) if inst is not None else None

    def _with_kubelet(self, inst: SandboxInstance) -> SandboxInstance:
        """podman's view, completed by the pod's kubelet: restart counts, back-off, probes,
        containers still waiting for their init containers."""
        worker = self._workers.get(inst.ref)
        if worker is None:
            return inst
        raw = {c.name: c for c in inst.init_containers + inst.containers}
        inst.init_containers, inst.containers = worker.report(raw)
        if worker.evicted:  # the kubelet's eviction: the pod has failed, whatever its containers show
            inst.state, inst.reason, inst.message = "failed", ephemeral.REASON, worker.evicted
        return inst

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        self.runtime.forget(ref)
        worker = self._workers.pop(ref, None)
        if worker is not None:  # nothing may restart the containers being removed
            await worker.stop()
            await worker.terminate(grace_seconds)  # preStop hooks, within the grace period
            worker.forget()
        await self.podman.run("pod", "rm", "--force", "--ignore", f"--time={grace_seconds}",
                              ref.instance_name, timeout=grace_seconds + 60)
        # A container left outside its pod (a crash between steps) must not leak either.
        for c in await self.runtime.containers_of(ref):
            await self.podman.run("rm", "--force", "--time=0", c["Id"], check=False)
        await self.volumes.remove(ref)

    async def list(self) -> list[SandboxRef]:
        out = await self.podman.json("ps", "--all", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        refs = set()
        for c in out if isinstance(out, list) else []:
            ref = ref_from_labels(c.get("Labels") or {})
            if ref:
                refs.add(ref)
        return sorted(refs, key=lambda r: (r.namespace, r.name))

    # --- volumes (podvolumes.py) -------------------------------------------------------
    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: VolumeContent) -> None:
        await self.volumes.prepare(ref, spec, labels, content)

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        return await self.volumes.write(ref, spec, content)

    # --- changes ------------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[SandboxRef]:
        """Refs of sandboxes whose state changed: podman's container events and the kubelet's
        own changes (back-off, probe results)."""
        reader = asyncio.create_task(self._read_events(), name="podman events")
        try:
            while True:
                yield await self._changes.get()
        finally:
            reader.cancel()

    async def _read_events(self) -> None:
        """Container events of this installation: a died container wakes its pod's kubelet,
        every event refreshes the sandbox's status. Reconnects forever."""
        while True:
            # Only what changes a pod's status: a start (first or a restart) and an exit.
            proc = await self.podman.stream("events", "--format=json", "--filter=type=container",
                                            "--filter=event=start", "--filter=event=died",
                                            f"--filter=label={LABEL_HOME}={self.home_id}")
            # Exits during the reconnection would go unseen: no inspection kept from before counts.
            self.runtime.stale_all()
            try:
                assert proc.stdout
                async for line in proc.stdout:
                    self._on_event(line)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            log.warning("podman events ended; reconnecting")
            await asyncio.sleep(1)

    def _on_event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        attributes = event.get("Attributes") or {}
        ref = ref_from_labels(attributes)
        if ref is None:
            return
        worker = self._workers.get(ref)
        if event.get("Status") == "died":
            self.runtime.stale(ref)  # before anything reacts to the exit: it inspects afresh
        if worker is not None and event.get("Status") == "died":
            code = event.get("ContainerExitCode", 0)  # podman omits a zero
            worker.on_died(attributes.get(LABEL_CONTAINER, ""), code if isinstance(code, int) else None)
        self._changes.put_nowait(ref)
