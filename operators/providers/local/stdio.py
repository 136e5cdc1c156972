"""`podman exec` / `podman attach` processes as stdio sessions for kubectl exec and attach.

Without a tty the three streams are plain pipes, so stdout and stderr stay apart and
closing the stdin pipe is the command's end of input. With a tty, podman gets a
pseudo-terminal of ours as its controlling terminal: it then puts it in raw mode, relays
the container terminal's output, and follows our window-size changes (SIGWINCH), which
is how a client's resize reaches the container.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
import tty as ttymod

from ..sessions import StdioSession

_CHUNK = 65536


def exec_args(name: str, command: list[str], *, stdin: bool, tty: bool) -> list[str]:
    # Empty detach keys: ctrl-p ctrl-q typed in a shell must reach it, not detach.
    # After `--` the container name and the command are data: podman passes what follows
    # the name to the container as it is (a `--` after the name would be the command).
    return ["exec", *(["--interactive"] if stdin else []), *(["--tty"] if tty else []),
            "--detach-keys=", "--", name, *command]


def attach_args(name: str, *, stdin: bool) -> list[str]:
    # Without --sig-proxy=false, stopping our podman process would signal the container.
    return ["attach", "--sig-proxy=false", "--detach-keys=", *([] if stdin else ["--no-stdin"]), "--", name]


async def open_session(binary: str, env: dict[str, str], args: list[str], *, stdin: bool,
                       tty: bool) -> StdioSession:
    if tty:
        return await PtySession.start(binary, env, args)
    proc = await asyncio.create_subprocess_exec(
        binary, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return PipeSession(proc)


class PipeSession(StdioSession):
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    async def read_stdout(self) -> bytes:
        assert self.proc.stdout
        return await self.proc.stdout.read(_CHUNK)

    async def read_stderr(self) -> bytes:
        assert self.proc.stderr
        return await self.proc.stderr.read(_CHUNK)

    async def write_stdin(self, data: bytes) -> None:
        pipe = self.proc.stdin
        if pipe is None or pipe.is_closing():
            return
        try:
            pipe.write(data)
            await pipe.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the command stopped reading; its exit ends the session

    async def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        pass

    async def wait(self) -> int:
        return await self.proc.wait()

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


def set_window_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class PtySession(StdioSession):
    def __init__(self, proc: asyncio.subprocess.Process, master: int):
        self.proc = proc
        self.master = master
        self._exited = asyncio.Event()
        self._waiter = asyncio.ensure_future(self._wait_exit())

    @classmethod
    async def start(cls, binary: str, env: dict[str, str], args: list[str]) -> "PtySession":
        master, slave = os.openpty()
        # Raw from the start: input that arrives before podman sets the mode itself must not
        # be echoed or translated by this outer terminal as well as by the container's.
        ttymod.setraw(slave)
        set_window_size(master, 80, 24)
        try:
            # `setsid --ctty` makes the terminal podman's controlling one, so window-size
            # changes signal podman.
            proc = await asyncio.create_subprocess_exec(
                "setsid", "--ctty", binary, *args, env=env, stdin=slave, stdout=slave, stderr=slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, master)

    async def _wait_exit(self) -> int:
        try:
            return await self.proc.wait()
        finally:
            self._exited.set()

    async def _until(self, add, remove) -> None:
        """Until the terminal is readable/writable or the process has exited."""
        loop = asyncio.get_running_loop()
        fd, ready = self.master, loop.create_future()
        add(fd, lambda: ready.done() or ready.set_result(None))
        exited = asyncio.ensure_future(self._exited.wait())
        try:
            await asyncio.wait([ready, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            remove(fd)
            exited.cancel()

    async def read_stdout(self) -> bytes:
        loop = asyncio.get_running_loop()
        while self.master >= 0:
            try:
                return os.read(self.master, _CHUNK)
            except BlockingIOError:
                # Podman's helpers may hold the terminal open after it exits: its exit,
                # once what it wrote is drained, is the end of the output.
                if self._exited.is_set():
                    return b""
                await self._until(loop.add_reader, loop.remove_reader)
            except OSError:
                return b""  # EIO: nothing holds the terminal any more
        return b""

    async def read_stderr(self) -> bytes:
        return b""

    async def write_stdin(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        while data and self.master >= 0 and not self._exited.is_set():
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                await self._until(loop.add_writer, loop.remove_writer)
            except OSError:
                return

    async def close_stdin(self) -> None:
        """A terminal has no end of input of its own: as with the kubelet's, a shell ends
        when it reads `exit` or ^D, which arrive as data."""

    def resize(self, width: int, height: int) -> None:
        if self.master >= 0:
            set_window_size(self.master, width, height)

    async def wait(self) -> int:
        return await asyncio.shield(self._waiter)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await asyncio.shield(self._waiter)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
