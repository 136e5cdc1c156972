"""A process wired to a container's stdio, as the streaming side of a provider opens it
for `kubectl exec` and `kubectl attach` (the virtual node's kubelet API bridges it to
the client's remote command protocol)."""
from __future__ import annotations

import abc


class StdioSession(abc.ABC):
    """A process wired to a container's stdio: `kubectl exec` or `kubectl attach`.

    Under a tty, stdout carries the terminal's output and stderr stays empty.
    """

    @abc.abstractmethod
    async def read_stdout(self) -> bytes:
        """The next output; b"" once the stream has ended."""

    @abc.abstractmethod
    async def read_stderr(self) -> bytes:
        """The next error output; b"" once the stream has ended (at once under a tty)."""

    @abc.abstractmethod
    async def write_stdin(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """End of input, as the process sees it."""

    @abc.abstractmethod
    def resize(self, width: int, height: int) -> None:
        """The client's terminal changed size (tty sessions only)."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """The exit code of the exec'd command (for attach: of the attachment)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the session (the client went away). Idempotent."""
