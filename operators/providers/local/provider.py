"""The local provider: each sandbox is a podman pod run by runc on this host.

Containers of a pod share its network namespace (own IP on a bridge network), cpu and
memory limits come from `resources`, and podman's own restart policy keeps
restartPolicy. State changes are pushed by `podman events`, so status follows within
milliseconds and nothing polls.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator

from ...models.podspec import PodSpec
from ..base import (ContainerInfo, ImagePullError, Provider, ProviderError, SandboxInstance,
                    SandboxRef)
from .podman import Podman
from .spec import (LABEL_CLUSTER_UID, LABEL_CONTAINER, LABEL_HOME, LABEL_NAME, LABEL_NAMESPACE, LABEL_UID,
                   container_name, run_args)

log = logging.getLogger(__name__)

_ZERO_TIME = "0001-01-01"
_PULL_FAILURES = ("initializing source", "pinging container registry", "manifest unknown",
                  "unable to pull", "requested access to the resource is denied", "Trying to pull",
                  "reading manifest", "name unknown")


def _rfc3339(ts: str | None) -> str | None:
    if not ts or ts.startswith(_ZERO_TIME):
        return None
    return ts[:19] + "Z"


def _container_info(name: str, data: dict) -> ContainerInfo:
    st = data.get("State", {})
    status = st.get("Status", "unknown")
    common = dict(name=name, restart_count=int(data.get("RestartCount", 0)),
                  image=data.get("ImageName"), image_id=data.get("Image"),
                  container_id=f"podman://{data.get('Id', '')}")
    if status == "running" or st.get("Running"):
        return ContainerInfo(state="running", started_at=_rfc3339(st.get("StartedAt")), **common)
    if status in ("exited", "stopped") and _rfc3339(st.get("StartedAt")):
        code = int(st.get("ExitCode", 0))
        reason = "OOMKilled" if st.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        return ContainerInfo(state="terminated", exit_code=code, reason=reason, message=st.get("Error") or None,
                             started_at=_rfc3339(st.get("StartedAt")),
                             finished_at=_rfc3339(st.get("FinishedAt")), **common)
    if st.get("Error"):
        return ContainerInfo(state="waiting", reason="RunContainerError", message=st["Error"], **common)
    return ContainerInfo(state="waiting", reason="ContainerCreating", **common)


class LocalProvider(Provider):
    name = "local"

    def __init__(self, *, home_id: str, containers_conf: str, network: str | None = None,
                 subnet: str | None = None):
        self.home_id = home_id
        self.podman = Podman(containers_conf)
        self.network = network or f"sk8s-{home_id}"
        self.subnet = subnet
        self._host_ip: str | None = None
        self._gateways: dict[str, str | None] = {}
        # Concurrent `podman run`s contend on podman's locks and storage: beyond a few at a
        # time, a burst (a 100-replica Deployment) gets slower in total, not faster.
        self._creating = asyncio.Semaphore(4)
        # A pod's IP and container ids do not change while it lives: later inspections
        # take one podman call instead of two.
        self._known: dict[SandboxRef, tuple[list[str], str | None, str | None, str]] = {}

    # --- shared resources -------------------------------------------------------
    async def setup(self) -> None:
        self._host_ip = await self._ensure_network(self.network, subnet=self.subnet, isolate=False)

    def cluster_network(self, cluster_uid: str) -> str:
        return f"sk8s-{self.home_id}-{cluster_uid[:12]}"

    async def _ensure_network(self, name: str, *, subnet: str | None = None, isolate: bool = False,
                              labels: dict[str, str] | None = None) -> str | None:
        """Create a bridge network if missing; return its gateway (the sandboxes' host IP)."""
        if name in self._gateways:
            return self._gateways[name]
        res = await self.podman.run("network", "exists", name, check=False)
        if res.rc != 0:
            # Without an explicit subnet podman takes a free one from its pool, so several
            # installations and tenants never collide.
            args = [f"--subnet={subnet}"] if subnet else []
            if isolate:
                # Tenant networks drop traffic from every other isolated network.
                args.append("--opt=isolate=true")
            args += [f"--label={k}={v}" for k, v in {LABEL_HOME: self.home_id, **(labels or {})}.items()]
            created = await self.podman.run("network", "create", *args, name, check=False)
            if created.rc != 0 and "already exists" not in created.err:
                raise ProviderError(f"creating network {name}: {created.err.strip()}")
        net = await self.podman.json("network", "inspect", name)
        subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
        self._gateways[name] = subnets[0].get("gateway") if subnets else None
        return self._gateways[name]

    async def network_for(self, labels: dict[str, str]) -> str:
        cluster_uid = labels.get(LABEL_CLUSTER_UID)
        if not cluster_uid:
            return self.network
        name = self.cluster_network(cluster_uid)
        await self._ensure_network(name, isolate=True, labels={LABEL_CLUSTER_UID: cluster_uid})
        return name

    async def release_cluster(self, cluster_uid: str) -> None:
        name = self.cluster_network(cluster_uid)
        self._gateways.pop(name, None)
        await self.podman.run("network", "rm", "--force", name, check=False)

    async def teardown(self) -> None:
        """Remove every sandbox and network of this installation."""
        limit = asyncio.Semaphore(8)

        async def remove(ref: SandboxRef) -> None:
            async with limit:
                await self.delete(ref, 0)
        await asyncio.gather(*(remove(ref) for ref in await self.list()))
        nets = await self.podman.json("network", "ls", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        for net in nets if isinstance(nets, list) else []:
            await self.podman.run("network", "rm", "--force", net.get("name") or net.get("Name"), check=False)

    # --- sandboxes --------------------------------------------------------------
    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        """Optimistic and idempotent: podman's unique names reject duplicates, so no listing first."""
        labels = {**labels, LABEL_HOME: self.home_id}
        network = await self.network_for(labels)
        new_pod = True
        for c in spec.containers:
            while True:
                args = run_args(ref, spec, c, network=network, labels=labels, new_pod=new_pod)
                async with self._creating:
                    res = await self.podman.run(*args, check=False, timeout=600)
                if res.rc == 0 or "is already in use" in res.err:
                    break  # created now, or before an operator restart
                if new_pod and "pod already exists" in res.err:
                    new_pod = False
                    continue
                raise self._classify(c.image, res.err)
            new_pod = False
        return ref.instance_name

    @staticmethod
    def _classify(image: str, stderr: str) -> ProviderError:
        msg = " ".join(ln.strip() for ln in stderr.splitlines() if ln.startswith("Error")) or stderr.strip()
        if "image not known" in stderr and "Trying to pull" not in stderr:
            return ImagePullError(f'image "{image}" is not present with pull policy of Never: {msg}',
                                  reason="ErrImageNeverPull")
        if any(s in stderr for s in _PULL_FAILURES):
            return ImagePullError(f'failed to pull image "{image}": {msg}')
        return ProviderError(msg or "podman run failed", reason="RunContainerError")

    async def _ps(self, ref: SandboxRef) -> list[dict]:
        out = await self.podman.json("ps", "--all", "--format=json", f"--filter=label={LABEL_UID}={ref.uid}")
        return out if isinstance(out, list) else []

    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        known = self._known.get(ref)
        if known:
            ids, ip, host_ip, pod_id = known
            res = await self.podman.run("container", "inspect", *ids, check=False)
            if res.rc == 0:
                return self._instance(ref, pod_id, json.loads(res.out), None, ip, host_ip)
            self._known.pop(ref, None)  # a container went away: look at the pod afresh
        res = await self.podman.run("pod", "inspect", ref.instance_name, check=False)
        if res.rc != 0:
            return None
        pod = json.loads(res.out)
        pod = pod[0] if isinstance(pod, list) else pod
        ids = [c["Id"] for c in pod.get("Containers") or []]
        if not ids:
            return SandboxInstance(ref, pod.get("Id", "")[:12], "creating")
        data = await self.podman.json("container", "inspect", *ids)
        infra = pod.get("InfraContainerID")
        ip, host_ip = None, self._host_ip
        for d in data:
            if d.get("Id") == infra:
                for net in (d.get("NetworkSettings", {}).get("Networks") or {}).values():
                    ip = net.get("IPAddress") or ip
                    host_ip = net.get("Gateway") or host_ip
        inst = self._instance(ref, pod.get("Id", "")[:12], data, infra, ip, host_ip)
        if ip and len(inst.containers) == len(ids) - 1:
            self._known[ref] = ([d["Id"] for d in data if d.get("Id") != infra], ip, host_ip, inst.instance_id)
        return inst

    @staticmethod
    def _instance(ref: SandboxRef, pod_id: str, data: list[dict], infra: str | None, ip: str | None,
                  host_ip: str | None) -> SandboxInstance:
        containers = []
        for d in data:
            cname = (d.get("Config", {}).get("Labels") or {}).get(LABEL_CONTAINER)
            if d.get("Id") != infra and cname:
                containers.append(_container_info(cname, d))
        states = {c.state for c in containers}
        state = "running" if "running" in states else ("exited" if states == {"terminated"} else "creating")
        started = min((c.started_at for c in containers if c.started_at), default=None)
        return SandboxInstance(ref, pod_id, state, ip=ip, host_ip=host_ip, started_at=started,
                               containers=containers)

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        self._known.pop(ref, None)
        await self.podman.run("pod", "rm", "--force", "--ignore", f"--time={grace_seconds}",
                              ref.instance_name, timeout=grace_seconds + 60)
        # A container left outside its pod (a crash between steps) must not leak either.
        for c in await self._ps(ref):
            await self.podman.run("rm", "--force", "--time=0", c["Id"], check=False)

    async def list(self) -> list[SandboxRef]:
        out = await self.podman.json("ps", "--all", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        refs = set()
        for c in out if isinstance(out, list) else []:
            ref = _ref_from_labels(c.get("Labels") or {})
            if ref:
                refs.add(ref)
        return sorted(refs, key=lambda r: (r.namespace, r.name))

    async def logs(self, ref: SandboxRef, container: str, *, follow: bool = False,
                   tail: int | None = None) -> AsyncIterator[bytes]:
        args = ["logs"]
        if follow:
            args.append("--follow")
        if tail is not None:
            args.append(f"--tail={tail}")
        args.append(container_name(ref, container))
        proc = await asyncio.create_subprocess_exec(
            self.podman.binary, *args, env=self.podman.env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        try:
            assert proc.stdout
            while chunk := await proc.stdout.read(65536):
                yield chunk
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    async def watch(self) -> AsyncIterator[SandboxRef]:
        """Container events of this installation, as the refs they concern. Reconnects forever."""
        while True:
            # Only what changes a pod's status: a start (first or a restart) and an exit.
            proc = await self.podman.stream("events", "--format=json", "--filter=type=container",
                                            "--filter=event=start", "--filter=event=died",
                                            f"--filter=label={LABEL_HOME}={self.home_id}")
            try:
                assert proc.stdout
                async for line in proc.stdout:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    ref = _ref_from_labels(event.get("Attributes") or {})
                    if ref:
                        yield ref
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            log.warning("podman events ended; reconnecting")
            await asyncio.sleep(1)


def _ref_from_labels(labels: dict) -> SandboxRef | None:
    try:
        return SandboxRef(labels[LABEL_NAMESPACE], labels[LABEL_NAME], labels[LABEL_UID])
    except KeyError:
        return None
