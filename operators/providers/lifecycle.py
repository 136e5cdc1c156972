"""The lifecycle side of a provider: how the SandboxPod operator turns a pod into a
sandbox on some capacity (virtual-kubelet's PodLifecycleHandler).

Designed for asynchronous cloud instances (ECI/ECS), not only local processes:
`ensure` may return an instance that is still being created; callers learn about
changes from `watch()` (pushed where the backend can push, polled where it cannot)
and re-read with `inspect`. Every call is idempotent and keyed by `SandboxRef`, so an
operator killed at any point converges on restart without duplicates or leaks.

Kubelet duties (restarts per restartPolicy, init containers, probes and the events they
raise) belong to the providers whose instances lack them: a cloud instance does them by
itself, the local provider runs a small kubelet per sandbox (local/kubelet/). Such a
provider takes the event sink as a constructor argument and reports outcomes through
`inspect` (restartCount, CrashLoopBackOff, ready).

Streams to running containers (logs, exec, attach, port-forward) are the other side,
`streaming.SandboxStreams`, served by another process (the virtual node).
"""
from __future__ import annotations

import abc
from typing import AsyncIterator

from ..models.podspec import PodSpec
from ..models.sandboxpod import EphemeralContainer
from .errors import ProviderError
from .sandbox import SandboxInstance, SandboxRef

# volume -> path -> (bytes, mode): the files of a pod's ConfigMap, Secret and downward API volumes.
VolumeContent = dict[str, dict[str, tuple[bytes, int]]]


class SandboxLifecycle(abc.ABC):
    name: str

    async def setup(self) -> None:
        """Prepare shared resources (networks, credentials). Idempotent."""

    async def release_cluster(self, cluster_uid: str) -> None:
        """Free what the provider holds for one tenant cluster (its network). Idempotent."""

    async def cluster_networks(self) -> list[str]:
        """The uids of the tenant clusters whose networks this provider holds, for garbage
        collection (a cluster deleted while its operator could not release them); [] where
        networks go with the sandboxes' host."""
        return []

    async def reserve_network(self, owner: str) -> str | None:
        """Hold a free address range for a future tenant VPC (its control plane plans its
        Services in it) while the directory `owner` exists; None where the provider chooses
        VPC ranges itself."""
        return None

    async def release_network(self, cidr: str) -> None:
        """Give up a hold of `reserve_network` (a plane destroyed). Idempotent."""

    async def ensure_cluster_network(self, cluster_uid: str, cidr: str) -> str | None:
        """Make the tenant's VPC now, with the range its control plane was given; return
        the VPC resolver's address (the tenant's kube-dns ClusterIP), None if it has none."""
        return None

    async def isolate_namespace(self, namespace: str) -> None:
        """The tenant's sandbox namespace (made by its ServerlessCluster's operator) fenced, where
        that namespace is the tenant's network boundary (metapod: a NetworkPolicy), before any
        sandbox runs in it; nothing where sandboxes get a network of their own (a VPC).
        Idempotent; ProviderError if it cannot."""

    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: VolumeContent) -> None:
        """Make the pod's volumes ready before `ensure`, with `content` in its content
        volumes. Idempotent."""

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec, content: VolumeContent) -> list[str]:
        """Replace the files of content volumes atomically (a source changed); the names changed."""
        return []

    async def resume(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> None:
        """Take over a sandbox found after an operator restart (its restart and probe loop).
        Nothing to do where the instance manages its containers itself."""

    async def add_ephemeral_container(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                                      container: EphemeralContainer) -> None:
        """Run one more container in the running sandbox (`kubectl debug`), sharing its network
        and, with `targetContainerName`, that container's processes; never restarted. Idempotent."""
        raise ProviderError(f"the {self.name} provider cannot add ephemeral containers", reason="NotSupported",
                            retryable=False)

    async def change_images(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> list[str]:
        """The pod's images as `spec` names them now (the one change a pod's spec takes in
        place): each running container whose image differs is restarted with its new one, as
        the kubelet does. Idempotent; the names of the containers restarted."""
        raise ProviderError(f"the {self.name} provider cannot change a running container's image",
                            reason="NotSupported", retryable=False)

    @abc.abstractmethod
    async def ensure(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> str:
        """Create the sandbox if it does not exist yet; return its instance id at once.

        As with a cloud API, the caller learns the sandbox's state from `watch()` and
        `inspect`, not from this call.
        """

    @abc.abstractmethod
    async def inspect(self, ref: SandboxRef) -> SandboxInstance | None:
        """The sandbox's current state, or None if there is none."""

    @abc.abstractmethod
    async def delete(self, ref: SandboxRef, grace_seconds: int) -> None:
        """Stop (SIGTERM, then SIGKILL after the grace period) and remove. Idempotent."""

    @abc.abstractmethod
    async def list(self) -> list[SandboxRef]:
        """Every sandbox this installation owns, for garbage collection."""

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[SandboxRef]:
        """Yields the ref of each sandbox whose state may have changed."""
