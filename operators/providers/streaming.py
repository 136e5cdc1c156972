"""The streaming side of a provider: what the virtual node's kubelet API (and
`sk8s sandbox-logs`) opens to a running sandbox, as virtual-kubelet's node/api handlers
call a provider: container logs with one options object, exec and attach sessions,
port-forward connections.

It is made on its own (`providers.make_streams`), without the lifecycle side: the
process that serves streams never creates, inspects or deletes sandboxes.
"""
from __future__ import annotations

import abc
import asyncio
from typing import AsyncIterator

from .errors import ProviderError
from .logopts import ContainerLogOpts
from .sandbox import SandboxRef
from .sessions import StdioSession


class SandboxStreams(abc.ABC):
    name: str

    @abc.abstractmethod
    def logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        """A container's output, honouring every option in `opts`."""

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
