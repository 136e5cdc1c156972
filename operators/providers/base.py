"""The provider interface: how an operator turns a pod into a sandbox on some capacity.

Designed for asynchronous cloud instances (ECI/ECS), not only local processes:
`ensure` may return an instance that is still being created; callers learn about
changes from `watch()` (pushed where the backend can push, polled where it cannot)
and re-read with `inspect`. Every call is idempotent and keyed by `SandboxRef`, so an
operator killed at any point converges on restart without duplicates or leaks.
"""
from __future__ import annotations

import abc
import asyncio
from typing import AsyncIterator

from ..models.podspec import PodSpec
from .errors import ProviderError
from .sandbox import EventSink, SandboxInstance, SandboxRef
from .sessions import StdioSession


class Provider(abc.ABC):
    name: str

    async def setup(self) -> None:
        """Prepare shared resources (networks, credentials). Idempotent."""

    async def release_cluster(self, cluster_uid: str) -> None:
        """Free what the provider holds for one tenant cluster (its network). Idempotent."""

    async def prepare_volumes(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str],
                              content: dict[str, dict[str, tuple[bytes, int]]]) -> None:
        """Make the pod's volumes ready before `ensure`; `content` holds the files of its
        ConfigMap, Secret and downward API volumes (volume -> path -> (bytes, mode)). Idempotent."""

    async def write_volumes(self, ref: SandboxRef, spec: PodSpec,
                            content: dict[str, dict[str, tuple[bytes, int]]]) -> list[str]:
        """Replace the files of content volumes atomically (a source changed); the names changed."""
        return []

    # --- the kubelet's part: restarts, init containers, probes -------------------------
    # A cloud instance (ECI) restarts containers, runs init containers and probes by
    # itself; a provider without that (local) does it here and reports the outcome through
    # `inspect` (restartCount, CrashLoopBackOff, ready) and user-visible events through the sink.
    event_sink: "EventSink | None" = None

    def record_event(self, ref: SandboxRef, type_: str, reason: str, message: str) -> None:
        """A kubelet-style event (Unhealthy, BackOff, Killing...) about one sandbox."""
        if self.event_sink is not None:
            self.event_sink(ref, type_, reason, message)

    async def resume(self, ref: SandboxRef, spec: PodSpec, labels: dict[str, str]) -> None:
        """Take over a sandbox found after an operator restart (its restart and probe loop).
        Nothing to do where the instance manages its containers itself."""

    async def exec_command(self, ref: SandboxRef, container: str, command: list[str],
                           timeout: float) -> tuple[int, str]:
        """Run a command in a container to completion (exec probes): exit code and output."""
        raise ProviderError(f"provider {self.name} cannot run commands in containers", retryable=False)

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

    async def open_exec_session(self, ref: SandboxRef, container: str, command: list[str], *,
                                stdin: bool, tty: bool) -> StdioSession:
        """Run a command in a running container with its stdio streamed (`kubectl exec`)."""
        raise ProviderError(f"the {self.name} provider cannot exec in containers", reason="NotSupported",
                            retryable=False)

    async def open_attach_session(self, ref: SandboxRef, container: str, *, stdin: bool,
                                  tty: bool) -> StdioSession:
        """Stream a running container's own stdio (`kubectl attach`)."""
        raise ProviderError(f"the {self.name} provider cannot attach to containers", reason="NotSupported",
                            retryable=False)

    async def open_port_stream(self, ref: SandboxRef, port: int) -> "tuple[asyncio.StreamReader, asyncio.StreamWriter]":
        """A TCP connection to `port` on the sandbox's own localhost (`kubectl port-forward`)."""
        raise ProviderError(f"the {self.name} provider cannot forward ports", reason="NotSupported",
                            retryable=False)
