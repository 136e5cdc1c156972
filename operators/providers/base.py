"""The provider interface: how an operator turns a pod into a sandbox on some capacity.

Designed for asynchronous cloud instances (ECI/ECS), not only local processes:
`ensure` may return an instance that is still being created; callers learn about
changes from `watch()` (pushed where the backend can push, polled where it cannot)
and re-read with `inspect`. Every call is idempotent and keyed by `SandboxRef`, so an
operator killed at any point converges on restart without duplicates or leaks.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import AsyncIterator

from ..models.podspec import PodSpec


@dataclass(frozen=True)
class SandboxRef:
    """Identity of one sandbox: the SandboxPod's uid is the idempotency key."""

    namespace: str
    name: str
    uid: str

    @property
    def instance_name(self) -> str:
        return f"sk8s-{self.uid}"


@dataclass
class ContainerInfo:
    name: str
    state: str  # "waiting" | "running" | "terminated"
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    image: str | None = None
    image_id: str | None = None
    container_id: str | None = None


@dataclass
class SandboxInstance:
    """What the provider reports about one sandbox, in provider-neutral terms."""

    ref: SandboxRef
    instance_id: str
    state: str  # "creating" | "running" | "exited" | "failed" | "unknown"
    ip: str | None = None
    host_ip: str | None = None
    started_at: str | None = None
    containers: list[ContainerInfo] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None


class ProviderError(Exception):
    """A provider call failed; `reason` becomes the status reason."""

    reason = "ProviderError"
    retryable = True

    def __init__(self, message: str, *, reason: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class ImagePullError(ProviderError):
    reason = "ErrImagePull"


class InvalidSpecError(ProviderError):
    reason = "InvalidSpec"
    retryable = False


class Provider(abc.ABC):
    name: str

    async def setup(self) -> None:
        """Prepare shared resources (networks, credentials). Idempotent."""

    async def release_cluster(self, cluster_uid: str) -> None:
        """Free what the provider holds for one tenant cluster (its network). Idempotent."""

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
    def logs(self, ref: SandboxRef, container: str, *, follow: bool = False,
             tail: int | None = None) -> AsyncIterator[bytes]:
        """A container's output."""

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[SandboxRef]:
        """Yields the ref of each sandbox whose state may have changed."""
