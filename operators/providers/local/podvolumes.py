"""A sandbox's volumes on this host (the files are volumes.py's, the NFS policy
nfspolicy.py's): prepared before its containers, content volumes rewritten atomically
when a source changes, everything removed with the sandbox.

NFS volumes are mounted by the host, with the host's network reach: the server's address
is checked against the pod's own VPC, other tenants, sk8s's own ranges and this host's
addresses before anything of the pod is prepared.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

from ...config import nfs_allowed
from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME, LABEL_SANDBOX_UID, REASON_CONFIG_ERROR, SERVICE_CIDR
from ...models.podspec import PodSpec
from ..errors import InvalidSpecError, ProviderError
from ..lifecycle import VolumeContent
from ..sandbox import SandboxRef
from . import fsgroup, nfspolicy, volumes
from .loadbalancer import internet_range
from .networks import LocalNetworks
from .podman import Podman

log = logging.getLogger(__name__)


class PodVolumes:
    def __init__(self, podman: Podman, networks: LocalNetworks, *, home_id: str):
        self.podman = podman
        self.networks = networks
        self.vpcs = networks.vpcs
        self.home_id = home_id

    @property
    def root(self) -> Path:
        return volumes.default_root()  # where run_args points the mounts

    async def prepare(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str], content: VolumeContent) -> None:
        if not spec.volumes:
            return
        # Every NFS server is checked before anything of the pod is prepared: a refused one
        # leaves nothing behind.
        addresses = {v.name: await self._nfs_address(v, labels) for v in spec.volumes if v.nfs}
        await asyncio.to_thread(volumes.prepare, ref, spec, self.root)
        await self.write(ref, spec, content)
        for v in spec.volumes:
            if v.nfs:
                vol_labels = {**labels, LABEL_HOME: self.home_id, LABEL_SANDBOX_UID: ref.uid}
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
                lb_range=internet_range(self.home_id), admin_network=await self.networks.admin_subnet())
        except nfspolicy.NfsUnresolvable as exc:
            raise ProviderError(f'volume "{v.name}": nfs.server: {exc}', reason="FailedMount") from exc
        except nfspolicy.NfsRefused as exc:
            why = str(exc)
        if why:
            log.warning("sandbox volume %s: nfs server %r refused: %s", v.name, v.nfs.server, why)
            raise InvalidSpecError(f'volume "{v.name}": nfs.server: Forbidden: {why}',
                                   reason=REASON_CONFIG_ERROR)
        return str(addr)

    @staticmethod
    async def _host_addresses() -> set:
        """Every address of this host's interfaces, read anew (bridges come and go)."""
        proc = await asyncio.create_subprocess_exec("ip", "-j", "addr", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        if proc.returncode != 0:  # fail closed: without the list, nothing could be checked
            raise ProviderError("cannot list the host's addresses (ip -j addr)", reason="FailedMount")
        return nfspolicy.host_addresses_from_ip_json(out.decode())

    async def write(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        changed = await asyncio.to_thread(volumes.write_content, ref, spec, self.root, content)
        await asyncio.to_thread(fsgroup.apply, ref, spec, self.root)  # new files get the pod's fsGroup
        return changed

    async def remove(self, ref: SandboxRef) -> None:
        await asyncio.to_thread(volumes.cleanup, ref, self.root)
        res = await self.podman.run("volume", "ls", "--quiet", f"--filter=label={LABEL_SANDBOX_UID}={ref.uid}",
                                    check=False)
        for name in res.out.split():
            await self.podman.run("volume", "rm", "--force", name, check=False)
