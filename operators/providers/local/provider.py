"""The local provider: each sandbox is a podman pod run by runc on this host.

Containers of a pod share its network namespace (own IP on a bridge network), cpu and
memory limits come from `resources`. A small kubelet per pod (`kubelet/`) runs init
containers, restarts containers per restartPolicy with back-off and runs probes. State
changes are pushed by `podman events`, so status follows within milliseconds and nothing polls.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from pathlib import Path
from typing import AsyncIterator

from ...config import nfs_allowed, sk8s_home
from ...models.contracts import SERVICE_CIDR
from ...models.podspec import Container, PodSpec
from ..base import Provider
from ..errors import ImagePullError, InvalidSpecError, ProviderError
from ..sandbox import ContainerInfo, SandboxInstance, SandboxRef
from ..sessions import StdioSession
from .kubelet import ephemeral
from .kubelet.worker import PodWorker
from . import firewall
from .podman import Podman, cannot_run, scrub_host_paths
from . import fsgroup, netns, nfspolicy, podenv, security, volumes
from .loadbalancer import internet_range
from .vpc import LocalVpcs
from .stdio import attach_args, exec_args, open_session
from .spec import (LABEL_CLUSTER_UID, LABEL_CONTAINER, LABEL_HOME, LABEL_INIT, LABEL_NAME, LABEL_NAMESPACE,
                   LABEL_UID, container_name, dns_args, previous_container_name, pull_policy, run_args)

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
                 subnet: str | None = None, state_dir: Path | None = None):
        self.home_id = home_id
        self.podman = Podman(containers_conf)
        self.network = network or f"sk8s-{home_id}"
        self.subnet = subnet
        self._admin_net: ipaddress.IPv4Network | None = None  # the admin network's subnet, once read
        self._host_ip: str | None = None
        self.vpcs = LocalVpcs(self.podman, home_id)
        self._gateways: dict[str, str | None] = {}
        # Concurrent `podman run`s contend on podman's locks and storage: beyond a few at a
        # time, a burst (a 100-replica Deployment) gets slower in total, not faster.
        self._creating = asyncio.Semaphore(4)
        # A pod's IP and container ids do not change while it lives: later inspections
        # take one podman call instead of two.
        self._known: dict[SandboxRef, tuple[list[str], str | None, str | None, str]] = {}
        self.state_dir = state_dir
        self._workers: dict[SandboxRef, PodWorker] = {}
        self._changes: asyncio.Queue[SandboxRef] = asyncio.Queue()

    # --- shared resources -------------------------------------------------------
    async def setup(self) -> None:
        self._host_ip = await self._ensure_network(self.network, subnet=self.subnet, isolate=False)
        # Tenant VPCs must not reach the admins' sandboxes on this network (firewall.py).
        net = await self.podman.json("network", "inspect", "--", self.network)
        subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
        self.vpcs.protected = tuple(s["subnet"] for s in subnets if s.get("subnet"))

    def cluster_network(self, cluster_uid: str) -> str:
        return self.vpcs.network_name(cluster_uid)

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

    async def network_for(self, labels: dict[str, str]) -> tuple[str, str | None]:
        """The sandbox's network and, in a tenant VPC, the VPC resolver."""
        cluster_uid = labels.get(LABEL_CLUSTER_UID)
        if not cluster_uid:
            return self.network, None
        vpc = await self.vpcs.ensure(cluster_uid)
        self._gateways[vpc.network] = vpc.gateway
        return vpc.network, vpc.layout.resolver

    async def release_cluster(self, cluster_uid: str) -> None:
        self._gateways.pop(self.cluster_network(cluster_uid), None)
        await self.vpcs.release(cluster_uid)

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

    async def run_container(self, ref: SandboxRef, spec: PodSpec, c: Container, *, network: str,
                            labels: dict[str, str], dns: list[str], new_pod: bool, init: bool = False) -> None:
        """`podman run` one container of the pod; the first one creates the pod. Idempotent."""
        late_env = None
        if podenv.late_fields(c):
            late_env = await self._late_env(ref, spec, network=network, dns=dns)
            new_pod = False
        subpaths = None
        if any(m.subPath for m in c.volumeMounts or []):
            # Resolved anew for every run: an earlier container of the pod may have changed
            # the volume since (volumes.prepare_subpaths, subpath.py).
            subpaths = await asyncio.to_thread(volumes.prepare_subpaths, ref, spec, c, self.volume_root)
        image_user = await self._image_user(c) if security.needs_image_user(spec, c) else None
        for _ in range(3):
            args = run_args(ref, spec, c, network=network, labels=labels, new_pod=new_pod, dns=dns, init=init,
                            late_env=late_env, volume_root=self.volume_root, subpaths=subpaths,
                            image_user=image_user)
            async with self._creating:
                res = await self.podman.run(*args, check=False, timeout=600)
            if res.rc == 0 or "is already in use" in res.err:
                break  # created now, or before an operator restart
            if new_pod and "pod already exists" in res.err:
                new_pod = False
                continue
            if not new_pod and "no such pod" in res.err:
                new_pod = True
                continue
            raise self._classify(c.image, res.err)
        self._known.pop(ref, None)  # the pod has one more container to report

    async def _image_user(self, c: Container) -> str:
        """The image's configured user (runAsNonRoot is verified against it), pulling the image
        first per its pull policy, as the kubelet pulls before it creates a container."""
        policy = pull_policy(c)
        present = (await self.podman.run("image", "exists", "--", c.image, check=False)).rc == 0
        if not present and policy == "Never":
            raise ImagePullError(f'image "{c.image}" is not present with pull policy of Never',
                                 reason="ErrImageNeverPull")
        if policy == "Always" or not present:
            async with self._creating:
                pulled = await self.podman.run("pull", "--quiet", "--", c.image, check=False, timeout=600)
            if pulled.rc != 0 and not present:  # like --pull=newer: a registry out of reach keeps the local one
                raise ImagePullError(f'failed to pull image "{c.image}": {pulled.err.strip()}')
        res = await self.podman.run("image", "inspect", "--format={{.Config.User}}", "--", c.image)
        return res.out.strip()

    # --- the kubelet's part (see kubelet/): restarts, init containers, probes ------------
    async def _worker(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> PodWorker:
        worker = self._workers.get(ref)
        if worker is None:
            labels = {**labels, LABEL_HOME: self.home_id}
            network, resolver = await self.network_for(labels)
            worker = self._workers.get(ref)  # created by a concurrent call meanwhile?
            if worker is None:
                state = self.state_dir / f"{ref.uid}.json" if self.state_dir else None
                worker = PodWorker(self, ref, spec, network=network, labels=labels, dns=dns_args(spec, resolver),
                                   state_file=state)
                self._workers[ref] = worker
        return worker

    async def resume(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> None:
        (await self._worker(ref, spec, labels)).resume()

    def sandbox_changed(self, ref: SandboxRef) -> None:
        """The kubelet changed what `inspect` reports (back-off, probe results)."""
        self._changes.put_nowait(ref)

    async def pod_ip(self, ref: SandboxRef) -> str | None:
        known = self._known.get(ref)
        if known and known[1]:
            return known[1]
        inst = await self.inspect(ref)
        return inst.ip if inst else None

    async def exec_command(self, ref: SandboxRef, container: str, command: list[str],
                           timeout: float) -> tuple[int, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.podman.binary, "exec", "--", container_name(ref, container), *command, env=self.podman.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        except (OSError, ValueError) as exc:
            raise cannot_run(["exec"], exc) from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(errors="replace")

    def _classify(self, image: str, stderr: str) -> ProviderError:
        # The message reaches the tenant (Events, pod status): without podman's "Error: "
        # (the Event adds the kubelet's own) and without this host's paths.
        msg = " ".join(ln.strip().removeprefix("Error: ") for ln in stderr.splitlines()
                       if ln.startswith("Error")) or stderr.strip()
        msg = scrub_host_paths(msg, {str(self.volume_root): "<volumes>", str(sk8s_home()): "<sk8s>"})
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
                return self._with_kubelet(self._instance(ref, pod_id, json.loads(res.out), None, ip, host_ip))
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
        if ip:
            current = {c.container_id for c in inst.containers + inst.init_containers}
            self._known[ref] = ([d["Id"] for d in data if f"podman://{d.get('Id')}" in current], ip, host_ip,
                                inst.instance_id)
        return self._with_kubelet(inst)

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

    @staticmethod
    def _instance(ref: SandboxRef, pod_id: str, data: list[dict], infra: str | None, ip: str | None,
                  host_ip: str | None) -> SandboxInstance:
        containers, init_containers = [], []
        for d in data:
            labels = d.get("Config", {}).get("Labels") or {}
            cname = labels.get(LABEL_CONTAINER)
            # A restarted container's previous run (kept for its logs) is not the container.
            if d.get("Id") != infra and cname and d.get("Name", "").lstrip("/") == container_name(ref, cname):
                (init_containers if labels.get(LABEL_INIT) else containers).append(_container_info(cname, d))
        states = {c.state for c in containers}
        state = "running" if "running" in states else ("exited" if states == {"terminated"} else "creating")
        started = min((c.started_at for c in containers + init_containers if c.started_at), default=None)
        return SandboxInstance(ref, pod_id, state, ip=ip, host_ip=host_ip, started_at=started,
                               containers=containers, init_containers=init_containers)

    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        self._known.pop(ref, None)
        worker = self._workers.pop(ref, None)
        if worker is not None:  # nothing may restart the containers being removed
            await worker.stop()
            worker.forget()
        await self.podman.run("pod", "rm", "--force", "--ignore", f"--time={grace_seconds}",
                              ref.instance_name, timeout=grace_seconds + 60)
        # A container left outside its pod (a crash between steps) must not leak either.
        for c in await self._ps(ref):
            await self.podman.run("rm", "--force", "--time=0", c["Id"], check=False)
        await self._remove_volumes(ref)

    async def _late_env(self, ref: SandboxRef, spec: PodSpec, *, network: str, dns: list[str]) -> dict[str, str]:
        """The pod IP and host IP for env, creating and starting the pod's network first."""
        res = await self.podman.run(*podenv.pod_create_args(ref, spec, network=network, dns=dns), check=False)
        if res.rc != 0 and "already exists" not in res.err:
            raise ProviderError(f"creating pod {ref.instance_name}: {res.err.strip()}", reason="RunContainerError")
        await self.podman.run("pod", "start", ref.instance_name, check=False)
        pod = await self.podman.json("pod", "inspect", ref.instance_name)
        pod = pod[0] if isinstance(pod, list) else pod
        infra = await self.podman.json("container", "inspect", pod.get("InfraContainerID", ""))
        ip, gw = podenv.infra_addresses(infra[0] if isinstance(infra, list) else infra)
        return podenv.late_values(ip, gw or self._host_ip)

    # --- volumes (see volumes.py) ---------------------------------------------------
    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: dict[str, dict[str, tuple[bytes, int]]]) -> None:
        if not spec.volumes:
            return
        # Every NFS server is checked before anything of the pod is prepared: a refused one
        # leaves nothing behind.
        addresses = {v.name: await self._nfs_address(v, labels) for v in spec.volumes if v.nfs}
        await asyncio.to_thread(volumes.prepare, ref, spec, self.volume_root)
        await self.write_volumes(ref, spec, content)
        for v in spec.volumes:
            if v.nfs:
                vol_labels = {**labels, LABEL_HOME: self.home_id, LABEL_UID: ref.uid}
                res = await self.podman.run(*volumes.nfs_create_args(ref, v, vol_labels, addresses[v.name]),
                                            check=False)
                if res.rc != 0 and "already exists" not in res.err:
                    raise ProviderError(f'volume "{v.name}": {res.err.strip()}', reason="FailedMount")

    async def _nfs_address(self, v, labels: dict[str, str]) -> str:
        """The one address the host may mount `v`'s NFS server from (nfspolicy.py), or a
        refusal naming the field: the host connects with its own network reach, so never to
        itself, another tenant or sk8s's own ranges on the pod's behalf."""
        cluster_uid = labels.get(LABEL_CLUSTER_UID)  # from the SandboxPod's namespace (tenancy.py)
        own = (await self.vpcs.ensure(cluster_uid)).layout.pod_range if cluster_uid else None
        try:
            allowed = nfspolicy.parse_allowed(nfs_allowed())
        except ValueError as exc:
            raise ProviderError(f'volume "{v.name}": {exc}', reason="FailedMount") from exc
        try:
            addr = await nfspolicy.resolve(v.nfs.server, asyncio.get_running_loop().getaddrinfo)
            why = nfspolicy.check_nfs_server(
                addr, own_vpc=own, pool=self.vpcs.pool, service_cidr=ipaddress.ip_network(SERVICE_CIDR),
                host_addresses=await self._host_addresses(), allowed=allowed,
                lb_range=internet_range(self.home_id), admin_network=await self._admin_subnet())
        except nfspolicy.NfsUnresolvable as exc:
            raise ProviderError(f'volume "{v.name}": nfs.server: {exc}', reason="FailedMount") from exc
        except nfspolicy.NfsRefused as exc:
            why = str(exc)
        if why:
            log.warning("sandbox volume %s: nfs server %r refused: %s", v.name, v.nfs.server, why)
            raise InvalidSpecError(f'volume "{v.name}": nfs.server: Forbidden: {why}',
                                   reason="CreateContainerConfigError")
        return str(addr)

    async def _host_addresses(self) -> set:
        """Every address of this host's interfaces, read anew (bridges come and go)."""
        proc = await asyncio.create_subprocess_exec("ip", "-j", "addr", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        if proc.returncode != 0:  # fail closed: without the list, nothing could be checked
            raise ProviderError("cannot list the host's addresses (ip -j addr)", reason="FailedMount")
        return nfspolicy.host_addresses_from_ip_json(out.decode())

    async def _admin_subnet(self):
        """The admin sandbox network's subnet (podman chose it)."""
        if self._admin_net is None:
            net = await self.podman.json("network", "inspect", "--", self.network)
            subnets = (net[0] if isinstance(net, list) else net).get("subnets") or []
            self._admin_net = ipaddress.ip_network(subnets[0]["subnet"]) if subnets else None
        return self._admin_net

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec,
                            content: dict[str, dict[str, tuple[bytes, int]]]) -> list[str]:
        changed = await asyncio.to_thread(volumes.write_content, ref, spec, self.volume_root, content)
        await asyncio.to_thread(fsgroup.apply, ref, spec, self.volume_root)  # new files get the pod's fsGroup
        return changed

    async def _remove_volumes(self, ref: SandboxRef) -> None:
        await asyncio.to_thread(volumes.cleanup, ref, self.volume_root)
        res = await self.podman.run("volume", "ls", "--quiet", f"--filter=label={LABEL_UID}={ref.uid}", check=False)
        for name in res.out.split():
            await self.podman.run("volume", "rm", "--force", name, check=False)

    @property
    def volume_root(self) -> Path:
        return volumes.default_root()  # where run_args points the mounts

    async def list(self) -> list[SandboxRef]:
        out = await self.podman.json("ps", "--all", "--format=json", f"--filter=label={LABEL_HOME}={self.home_id}")
        refs = set()
        for c in out if isinstance(out, list) else []:
            ref = _ref_from_labels(c.get("Labels") or {})
            if ref:
                refs.add(ref)
        return sorted(refs, key=lambda r: (r.namespace, r.name))

    async def logs(self, ref: SandboxRef, container: str, *, follow: bool = False,
                   tail: int | None = None, previous: bool = False) -> AsyncIterator[bytes]:
        args = ["logs"]
        if follow:
            args.append("--follow")
        if tail is not None:
            args.append(f"--tail={tail}")
        args += ["--", previous_container_name(ref, container) if previous else container_name(ref, container)]
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

    async def open_exec_session(self, ref: SandboxRef, container: str, command: list[str], *,
                                stdin: bool, tty: bool) -> StdioSession:
        return await open_session(self.podman.binary, self.podman.env,
                                  exec_args(container_name(ref, container), command, stdin=stdin, tty=tty),
                                  stdin=stdin, tty=tty)

    async def open_attach_session(self, ref: SandboxRef, container: str, *, stdin: bool,
                                  tty: bool) -> StdioSession:
        return await open_session(self.podman.binary, self.podman.env,
                                  attach_args(container_name(ref, container), stdin=stdin), stdin=stdin, tty=tty)

    async def pod_netns(self, ref: SandboxRef) -> str:
        """Path of the sandbox's network namespace (its infra container's), where port-forward
        and probes connect from."""
        infra = (await self.podman.run("pod", "inspect", "--format={{.InfraContainerID}}", ref.instance_name,
                                       check=False)).out.strip()
        path = infra and (await self.podman.run("container", "inspect", "--format={{.NetworkSettings.SandboxKey}}",
                                                infra, check=False)).out.strip()
        if not path:
            raise ProviderError(f"sandbox {ref.instance_name} has no network namespace")
        return path

    async def open_port_stream(self, ref: SandboxRef, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await netns.open_connection(await self.pod_netns(ref), port)

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
            try:
                assert proc.stdout
                async for line in proc.stdout:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    attributes = event.get("Attributes") or {}
                    ref = _ref_from_labels(attributes)
                    if ref is None:
                        continue
                    worker = self._workers.get(ref)
                    if worker is not None and event.get("Status") == "died":
                        code = event.get("ContainerExitCode", 0)  # podman omits a zero
                        worker.on_died(attributes.get(LABEL_CONTAINER, ""), code if isinstance(code, int) else None)
                    self._changes.put_nowait(ref)
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
