"""The in-memory backend's exec: commands that only pretend to run, for unit tests.

- `echo WORD...`: the words on stdout, exit 0;
- `cat`: stdin back on stdout until stdin ends, exit 0;
- `fail CODE WORD...`: the words on stderr, exit CODE;
- `sleep`: runs until stopped;
- anything else: "<command>: not found" on stderr, exit 127, as a shell answers.
Under a tty, what would go to stderr goes to stdout (a terminal merges them). Terminal
sizes received are kept in `sizes`.
"""
from __future__ import annotations

import asyncio

from ...providers.sessions import StdioSession


class CannedSession(StdioSession):
    def __init__(self, command: list[str], *, stdin: bool, tty: bool):
        self.command, self.stdin, self.tty = list(command), stdin, tty
        self.sizes: list[tuple[int, int]] = []
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._err: asyncio.Queue[bytes] = asyncio.Queue()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._stdin_open = stdin
        name, args = command[0], command[1:]
        if name == "echo":
            self._finish(out=" ".join(args) + "\n", code=0)
        elif name == "fail" and args and args[0].isdigit():
            self._finish(err=" ".join(args[1:]) + "\n", code=int(args[0]))
        elif name == "cat":
            if not stdin:
                self._finish(code=0)
        elif name != "sleep":
            self._finish(err=f"{name}: not found\n", code=127)

    def _finish(self, *, out: str = "", err: str = "", code: int) -> None:
        if self._exit.done():
            return
        if err and self.tty:
            out, err = out + err, ""
        for queue, text in ((self._out, out), (self._err, err)):
            if text:
                queue.put_nowait(text.encode())
            queue.put_nowait(b"")
        self._exit.set_result(code)

    async def _next(self, queue: asyncio.Queue[bytes]) -> bytes:
        data = await queue.get()
        if not data:
            queue.put_nowait(b"")  # the end, for every later read too
        return data

    async def read_stdout(self) -> bytes:
        return await self._next(self._out)

    async def read_stderr(self) -> bytes:
        return await self._next(self._err)

    async def write_stdin(self, data: bytes) -> None:
        if self.command[0] == "cat" and self._stdin_open and not self._exit.done():
            self._out.put_nowait(data)

    async def close_stdin(self) -> None:
        self._stdin_open = False
        if self.command[0] == "cat":
            self._finish(code=0)

    def resize(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        self._finish(code=137)  # stopped: killed, as a real one would be
