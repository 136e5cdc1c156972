"""The container runtime of the local kubelet, on podman: it implements the kubelet's
narrow `ContainerRuntime` protocol (kubelet/runtime.py) — create a pod's containers
(pulling first where runAsNonRoot needs the image's user, with the late env and the
subPath mounts), inspect, start, stop, retire, exec — and gives the provider podman's
view of a whole pod (`inspect_pod`), with the pod's addresses and container ids kept for
the pod's life.

Few podman processes per pod (each costs podman's start-up and contends on its locks, in a
burst more than the `podman run`s themselves): images seen present are remembered
(images.py), container inspections of pods asking together go in one process
(inspections.py), and a pod this runtime made is inspected by its containers' names, which
carry the pod's addresses too, without `pod inspect` and its infra container's inspection."""
from __future__ import annotations

import asyncio
import json
import time
import os
from pathlib import Path

from ...config import sk8s_home
from ...models.contracts import LABEL_SANDBOX_UID
from ...models.podspec import Container, PodSpec
from ..errors import ImagePullError, ProviderError
from ..sandbox import SandboxInstance, SandboxRef
from . import imagepull, subpathexpr, hostsfile, podenv, security, status, termlog, volumes
from .images import ImagePresence
from .inspections import Inspections, Snapshots
from .podman import Podman, cannot_run, pod_netns, scrub_host_paths
from .spec import container_name, env_args, previous_container_name, pull_policy, run_args

MAX_HOSTS_FILE = 1 << 20
LOG_SETTLE_READS = 5  # FallbackToLogsOnError: reads of an empty log tail, 0.1 s apart
_PULL_FAILURES = ("initializing source", "pinging container registry", "manifest unknown",
                  "unable to pull", "requested access to the resource is denied", "Trying to pull",
                  "reading manifest", "name unknown")


def classify_run_error(image: str, stderr: str, host_paths: dict[str, str]) -> ProviderError:
    """A failed `podman run` as the kubelet would name it (ErrImagePull...). The message
    reaches the tenant (Events, pod status): without podman's "Error: " (the Event adds
    the kubelet's own) and with this host's paths replaced by names."""
    msg = " ".join(ln.strip().removeprefix("Error: ") for ln in stderr.splitlines()
                   if ln.startswith("Error")) or stderr.strip()
    msg = scrub_host_paths(msg, host_paths)
    if "image not known" in stderr and "Trying to pull" not in stderr:
        return ImagePullError(f'image "{image}" is not present with pull policy of Never: {msg}',
                              reason="ErrImageNeverPull")
    if any(s in stderr for s in _PULL_FAILURES):
        return ImagePullError(f'failed to pull image "{image}": {msg}')
    return ProviderError(msg or "podman run failed", reason="RunContainerError")


class PodmanRuntime:
    def __init__(self, podman: Podman):
        self.podman = podman
        self.host_ip: str | None = None  # the sandbox network's gateway, once the provider has set it up
        # Concurrent `podman run`s contend on podman's locks and storage: beyond a few at a
        # time, a burst (a 100-replica Deployment) gets slower in total, not faster.
        self._creating = asyncio.Semaphore(4)
        self._pulls: dict[str, asyncio.Future] = {}  # image -> its pull in flight
        # A pod's IP and container ids do not change while it lives: later inspections
        # take one podman call instead of two.
        self._known: dict[SandboxRef, tuple[list[str], str | None, str | None, str]] = {}
        # Bumped whenever a pod's containers change: an inspection that began before the
        # change must not store what it saw (a container created meanwhile would be missing
        # from the cache, and reported as ContainerCreating for ever).
        self._known_epoch: dict[SandboxRef, int] = {}
        # The containers of each pod this runtime created (the pod too): inspected by these
        # names at once. A pod found made (an operator restart) has no entry: podman is asked.
        self._members: dict[SandboxRef, set[str]] = {}
        self.images = ImagePresence(podman)
        self.inspections = Snapshots(Inspections(podman))

    @property
    def volume_root(self) -> Path:
        return volumes.default_root()  # where run_args points the mounts

    def volume_dir(self, ref: SandboxRef, volume: str) -> Path:
        return volumes.volume_dir(self.volume_root, ref, volume)

    # --- containers (the kubelet's ContainerRuntime) ----------------------------------
    async def pull_image(self, c: Container, event) -> None:
        """As the kubelet's image manager (EnsureImageExists) before it creates a container:
        pull per the container's pull policy, recording Pulling/Pulled as it goes
        (`event(type, reason, message)`, imagepull.py for the wording)."""
        policy = pull_policy(c)
        present = await self.images.present(c.image, fresh=policy == "Never")
        if not present and policy == "Never":
            raise ImagePullError(f'image "{c.image}" is not present with pull policy of Never',
                                 reason="ErrImageNeverPull")
        if present and policy != "Always":
            event("Normal", "Pulled", imagepull.present_message(c.image))
            return
        event("Normal", "Pulling", imagepull.pulling_message(c.image))
        waited = time.monotonic()
        started, pulled = await self._pull(c.image)
        started = max(started, waited)  # a pull joined in flight: this container's share of it
        done = time.monotonic()
        if pulled.rc != 0:
            if not present:
                raise ImagePullError(f'failed to pull image "{c.image}": {pulled.err.strip()}')
            # like --pull=newer: a registry out of reach keeps the local image, which is used
            event("Normal", "Pulled", imagepull.present_message(c.image))
            return
        self.images.seen(c.image)
        size = await self.podman.run("image", "inspect", "--format={{.Size}}", "--", c.image, check=False)
        event("Normal", "Pulled", imagepull.pulled_message(c.image, done - started, done - waited,
                                                             size.out.strip() if size.rc == 0 else ""))

    async def _pull(self, image: str):
        """One `podman pull` per image at a time, shared by every container asking while it
        runs (as containerd shares a pull in flight): a burst of pods of one image (`:latest`
        is pulled for each, imagePullPolicy Always) would otherwise queue as many pulls of
        the same reference, each holding a run slot (bench/burst_profile.py: 20 pulls, 66 s
        of a 50 s burst). A pull asked for after one finished starts anew, as Always says.
        (when it started, its result)."""
        flight = self._pulls.get(image)
        if flight is None:
            flight = self._pulls[image] = asyncio.ensure_future(self._pull_once(image))
            flight.add_done_callback(lambda _: self._pulls.pop(image, None))
        return await asyncio.shield(flight)

    async def _pull_once(self, image: str):
        async with self._creating:
            started = time.monotonic()
            return started, await self.podman.run("pull", "--quiet", "--", image, check=False, timeout=600)

    async def create_container(self, ref: SandboxRef, spec: PodSpec, c: Container, *, network: str,
                               labels: dict[str, str], dns: list[str], new_pod: bool, init: bool = False,
                               pulled: bool = False, ephemeral: bool = False) -> None:
        """`podman run` one container of the pod; the first one creates the pod. Idempotent.
        `pulled`: `pull_image` has just pulled per the policy, so nothing is pulled again."""
        late_env = None
        hosts_lines = new_pod and (spec.hostDomain or spec.hostAliases)
        if podenv.late_fields(c) or hosts_lines:
            aliases = hostsfile.alias_lines(spec.hostAliases)  # refused before the pod is made
            infra = await self._started_pod(ref, spec, network=network, dns=dns)
            if hosts_lines:  # before any container of the pod runs
                await self._add_hosts_lines(ref, spec, infra, aliases)
            if podenv.late_fields(c):
                ip, gw = podenv.infra_addresses(infra)
                late_env = podenv.late_values(ip, gw or self.host_ip)
            new_pod = False
        if new_pod and spec.shareProcessNamespace:
            # `podman run --pod=new:` cannot share the pid namespace: the pod is made first.
            await self._create_pod(ref, spec, network=network, dns=dns)
            new_pod = False
        # subPathExpr: expanded from the container's own environment as it is now, then
        # mounted as that subPath (a refusal is CreateContainerConfigError, retried).
        if any(m.subPathExpr for m in c.volumeMounts or []):
            c = subpathexpr.expanded(c, subpathexpr.env_values(env_args(c, ref, late_env)))
        subpaths = None
        if any(m.subPath for m in c.volumeMounts or []):
            # Resolved anew for every run: an earlier container of the pod may have changed
            # the volume since (volumes.prepare_subpaths, subpath.py).
            subpaths = await asyncio.to_thread(volumes.prepare_subpaths, ref, spec, c, self.volume_root)
        image_user = await self._image_user(c, pulled) if security.needs_image_user(spec, c) else None
        term_log = await asyncio.to_thread(termlog.prepare, self.volume_root, ref, c)  # empty for this run
        for _ in range(3):
            args = run_args(ref, spec, c, network=network, labels=labels, new_pod=new_pod, dns=dns, init=init,
                            late_env=late_env, volume_root=self.volume_root, subpaths=subpaths,
                            image_user=image_user, termination_log=term_log, pulled=pulled, ephemeral=ephemeral)
            async with self._creating:
                res = await self.podman.run(*args, check=False, timeout=600)
            if res.rc == 0 or "is already in use" in res.err:
                if new_pod and res.rc == 0:
                    self._members[ref] = set()  # this runtime made the pod: it knows its containers
                break  # created now, or before an operator restart
            if new_pod and "pod already exists" in res.err:
                new_pod = False
                continue
            if not new_pod and "no such pod" in res.err:
                new_pod = True
                continue
            self.images.forget(c.image)  # removed behind our back, maybe: asked again next time
            raise self._classify(c.image, res.err)
        if ref in self._members:
            self._members[ref].add(container_name(ref, c.name))
        self._invalidate(ref)  # the pod has one more container to report

    async def _create_pod(self, ref: SandboxRef, spec: PodSpec, *, network: str, dns: list[str]) -> None:
        res = await self.podman.run(*podenv.pod_create_args(ref, spec, network=network, dns=dns), check=False)
        if res.rc != 0 and "already exists" not in res.err:
            raise ProviderError(f"creating pod {ref.instance_name}: {res.err.strip()}", reason="RunContainerError")
        if res.rc == 0:
            self._members[ref] = set()

    def _classify(self, image: str, stderr: str) -> ProviderError:
        return classify_run_error(image, stderr, {str(self.volume_root): "<volumes>", str(sk8s_home()): "<sk8s>"})

    async def _image_user(self, c: Container, pulled: bool = False) -> str:
        """The image's configured user (runAsNonRoot is verified against it), pulling the image
        first per its pull policy (unless `pulled`), as the kubelet pulls before it creates a container."""
        policy = "IfNotPresent" if pulled else pull_policy(c)
        # Never cached (a security check reads it, and a tag may name another image since):
        # one inspection, which also says whether the image is there.
        user = ("image", "inspect", "--format={{.Config.User}}", "--", c.image)
        res = await self.podman.run(*user, check=False)
        present = res.rc == 0
        if not present and policy == "Never":
            raise ImagePullError(f'image "{c.image}" is not present with pull policy of Never',
                                 reason="ErrImageNeverPull")
        if policy == "Always" or not present:
            async with self._creating:
                pulled = await self.podman.run("pull", "--quiet", "--", c.image, check=False, timeout=600)
            if pulled.rc != 0 and not present:  # like --pull=newer: a registry out of reach keeps the local one
                raise ImagePullError(f'failed to pull image "{c.image}": {pulled.err.strip()}')
            res = await self.podman.run(*user)
        return res.out.strip()

    async def _started_pod(self, ref: SandboxRef, spec: PodSpec, *, network: str, dns: list[str]) -> dict:
        """The pod's infra container (`podman container inspect`), the pod created and started
        first: its address (for the late env) and its hosts file exist then."""
        await self._create_pod(ref, spec, network=network, dns=dns)
        await self.podman.run("pod", "start", ref.instance_name, check=False)
        pod = await self.podman.json("pod", "inspect", ref.instance_name)
        pod = pod[0] if isinstance(pod, list) else pod
        infra = await self.podman.json("container", "inspect", pod.get("InfraContainerID", ""))
        return (infra[0] if isinstance(infra, list) and infra else infra) or {}

    async def _add_hosts_lines(self, ref: SandboxRef, spec: PodSpec, infra: dict, aliases: list[str]) -> None:
        """The kubelet's lines in the pod's hosts file, which podman shares from the infra
        container to every container: spec.hostDomain's `<ip> <hostname>.<domain>
        <hostname>`, and the hostAliases block (hostsfile.py)."""
        line = None
        if spec.hostDomain:
            ip, _ = podenv.infra_addresses(infra)
            line = hostsfile.domain_line(ip or "", spec.hostname or ref.name, spec.hostDomain)
        path = infra.get("HostsPath")
        if not path:
            raise ProviderError(f"pod {ref.instance_name} has no hosts file", reason="RunContainerError")
        await asyncio.to_thread(_add_lines, Path(path), line, aliases)

    async def inspect_container(self, ref: SandboxRef, container: str) -> dict | None:
        name = container_name(ref, container)
        return (await self.inspections.get(ref, [name]))[name]

    async def start_container(self, ref: SandboxRef, container: str) -> None:
        res = await self.podman.run("start", "--", container_name(ref, container), check=False)
        self.stale(ref)
        if res.rc != 0:
            raise ProviderError(res.err.strip() or "podman start failed", reason="RunContainerError")

    async def stop_container(self, ref: SandboxRef, container: str, grace: int) -> None:
        try:
            await self.podman.run("stop", f"--time={grace}", "--", container_name(ref, container),
                                  check=False, timeout=grace + 60)
        finally:
            self.stale(ref)

    async def retire_container(self, ref: SandboxRef, container: str) -> bool:
        current, previous = container_name(ref, container), previous_container_name(ref, container)
        await self.podman.run("rm", "--force", "--time=0", "--", previous, check=False)
        renamed = await self.podman.run("rename", "--", current, previous, check=False)
        self.stale(ref)
        return renamed.rc == 0 or "no such container" in renamed.err

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

    async def termination_message(self, ref: SandboxRef, c: Container, inspection: dict) -> str | None:
        code = int((inspection.get("State") or {}).get("ExitCode") or 0)
        written = None
        if termlog.check_path(c):
            written = await asyncio.to_thread(termlog.read_file, termlog.host_file(self.volume_root, ref, c.name))
        if termlog.needs_logs(c.terminationMessagePolicy, code, written):
            # conmon may still be draining the last output into the log as the exit is seen:
            # an empty tail is read again for a moment before it counts as "no logs".
            for attempt in range(LOG_SETTLE_READS):
                written = await asyncio.to_thread(termlog.read_log, termlog.log_path(inspection))
                if written or attempt == LOG_SETTLE_READS - 1:
                    break
                await asyncio.sleep(0.1)
        return written or None

    async def pod_ip(self, ref: SandboxRef) -> str | None:
        known = self._known.get(ref)
        if known and known[1]:
            return known[1]
        inst = await self.inspect_pod(ref)
        return inst.ip if inst else None

    async def pod_netns(self, ref: SandboxRef) -> str:
        return await pod_netns(self.podman, ref)

    # --- whole pods --------------------------------------------------------------------
    async def inspect_pod(self, ref: SandboxRef) -> SandboxInstance | None:
        """podman's view of the pod, before its kubelet completes it."""
        if self._members.get(ref):
            inst = await self._inspect_members(ref, self._known_epoch.get(ref, 0))
        else:
            inst = await self._inspect_known(ref)
        return inst if inst is not None else await self._inspect_pod(ref, self._known_epoch.get(ref, 0))

    async def _inspect_known(self, ref: SandboxRef) -> SandboxInstance | None:
        """A pod found made, by the container ids its first inspection found; None if there
        was none or a container went away (the pod is looked at afresh)."""
        known = self._known.get(ref)
        if not known:
            return None
        ids, ip, host_ip, pod_id = known
        found = await self.inspections.get(ref, ids)
        if ids and all(found.values()):
            return status.instance(ref, pod_id, [found[i] for i in ids], None, ip, host_ip)
        self._invalidate(ref)
        return None

    async def _inspect_members(self, ref: SandboxRef, epoch: int) -> SandboxInstance | None:
        """A pod this runtime made, by its containers' names: one inspection (shared with
        other pods'), which gives the pod's id and addresses too (a container in a pod shows
        the network of the pod's infra container). None where podman must be asked about
        the pod: none made here, or one of them gone or without an address."""
        names = sorted(self._members.get(ref) or ())
        found = await self.inspections.get(ref, names) if names else {}
        data = [d for d in found.values() if d]
        if not data or len(data) < len(names):
            return None
        ip, gw = podenv.infra_addresses(data[0])
        if not ip:
            return None
        pod_id, host_ip = str(data[0].get("Pod") or "")[:12], gw or self.host_ip
        inst = status.instance(ref, pod_id, data, None, ip, host_ip)
        self._remember(ref, epoch, inst, data, ip, host_ip)
        return inst

    async def _inspect_pod(self, ref: SandboxRef, epoch: int) -> SandboxInstance | None:
        res = await self.podman.run("pod", "inspect", ref.instance_name, check=False)
        if res.rc != 0:
            return None
        pod = json.loads(res.out)
        pod = pod[0] if isinstance(pod, list) else pod
        ids = [c["Id"] for c in pod.get("Containers") or []]
        if not ids:
            return SandboxInstance(ref, pod.get("Id", "")[:12], "creating")
        data = [d for d in (await self.inspections.get(ref, ids)).values() if d]
        infra = pod.get("InfraContainerID")
        ip, host_ip = status.pod_addresses(data, infra, self.host_ip)
        inst = status.instance(ref, pod.get("Id", "")[:12], data, infra, ip, host_ip)
        self._remember(ref, epoch, inst, data, ip, host_ip)
        return inst

    def _remember(self, ref: SandboxRef, epoch: int, inst: SandboxInstance, data: list[dict], ip: str | None,
                  host_ip: str | None) -> None:
        """The pod's container ids and addresses, for its next inspections; not if a container
        was created since the inspection began (`epoch`)."""
        if ip and self._known_epoch.get(ref, 0) == epoch:
            current = {c.container_id for c in inst.containers + inst.init_containers + inst.ephemeral_containers}
            self._known[ref] = ([d["Id"] for d in data if f"podman://{d.get('Id')}" in current], ip, host_ip,
                                inst.instance_id)

    def _invalidate(self, ref: SandboxRef) -> None:
        self._known.pop(ref, None)
        self._known_epoch[ref] = self._known_epoch.get(ref, 0) + 1
        self.stale(ref)

    def stale(self, ref: SandboxRef) -> None:
        """The pod's containers may have changed state (an exit, an action of this runtime):
        its next inspections ask podman (inspections.Snapshots)."""
        self.inspections.stale(ref)

    def stale_all(self) -> None:
        self.inspections.stale_all()

    def forget(self, ref: SandboxRef) -> None:
        self._known.pop(ref, None)
        self._known_epoch.pop(ref, None)
        self._members.pop(ref, None)
        self.inspections.forget(ref)

    async def containers_of(self, ref: SandboxRef) -> list[dict]:
        """Every container labelled with the sandbox, inside its pod or not."""
        out = await self.podman.json("ps", "--all", "--format=json", f"--filter=label={LABEL_SANDBOX_UID}={ref.uid}")
        return out if isinstance(out, list) else []


def _add_lines(path: Path, line: str | None, aliases: list[str]) -> None:
    """Rewritten in place (containers bind-mount this very file), never through a symlink.
    After a provider restart the pod's containers may have written it: one grown beyond
    any hosts file is not read (and keeps what it has)."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    with os.fdopen(fd, "r+", errors="replace") as f:
        content = f.read(MAX_HOSTS_FILE + 1)
        if len(content) > MAX_HOSTS_FILE:
            return
        updated = hostsfile.with_alias_lines(hostsfile.with_domain_line(content, line) if line else content, aliases)
        if updated != content:
            f.seek(0)
            f.write(updated)
            f.truncate()
