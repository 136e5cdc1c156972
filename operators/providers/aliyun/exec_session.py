"""A command run by ECI's ExecContainerCommand, its stdio on the WebSocket the call answered
(framing: eci_exec_frames), as the StdioSession `kubectl exec` is bridged to.

The exit code is the one the error channel reports. Where it reports a failure with no
exit code (the command could not be run), or the socket closes with no report at all, the
session writes the reason to the client's error output (its output under a tty, which has
no other) and exits 1: kubectl then shows why and fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from ..errors import ProviderError
from ..sessions import StdioSession
from . import eci_exec_frames as ef

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10.0
LOST = "the exec WebSocket of ExecContainerCommand closed without the command's exit status"


async def connect(uri: str, *, tty: bool) -> WebSocketSession:
    if not uri.startswith(("ws://", "wss://")):
        raise ProviderError("ExecContainerCommand answered no WebSocketUri", reason="ProviderFailed",
                            retryable=False)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
    try:
        ws = await http.ws_connect(uri, protocols=ef.PROTOCOLS, max_msg_size=0, heartbeat=30.0)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await http.close()
        # Not str(exc): it holds the URI, whose ticket is a credential for the session.
        detail = f"HTTP {exc.status}" if isinstance(exc, aiohttp.ClientResponseError) else type(exc).__name__
        raise ProviderError(f"could not open the exec WebSocket of ExecContainerCommand: {detail}",
                            reason="ProviderFailed", retryable=False) from None
    return WebSocketSession(http, ws, tty=tty)


class WebSocketSession(StdioSession):
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, *, tty: bool,
                 lost: str = LOST):
        """`lost`: what the client is told when the socket closes with no exit status
        (the metapod provider's sessions, on the meta apiserver's socket, say their own)."""
        self.http, self.ws, self.tty, self.lost = http, ws, tty, lost
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._err: asyncio.Queue[bytes] = asyncio.Queue()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._sending: set[asyncio.Task] = set()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    break
                frame = ef.decode(msg.data)
                if frame is None or frame.close or not frame.data:
                    continue  # an empty frame (a server's "streams ready") carries nothing
                if frame.channel == ef.STDOUT:
                    self._out.put_nowait(frame.data)
                elif frame.channel == ef.STDERR:
                    self._err.put_nowait(frame.data)
                elif frame.channel == ef.ERROR:
                    self._report(ef.parse_status(frame.data))
        except (aiohttp.ClientError, ConnectionResetError, asyncio.TimeoutError) as exc:
            log.info("exec WebSocket: %s", type(exc).__name__)
        finally:
            if not self._exit.done():
                self._report(ef.Outcome(None, self.lost))
            self._out.put_nowait(b"")
            self._err.put_nowait(b"")

    def _report(self, outcome: ef.Outcome) -> None:
        if self._exit.done():
            return
        if outcome.exit_code is None:
            (self._out if self.tty else self._err).put_nowait(f"{outcome.message}\n".encode())
        self._exit.set_result(1 if outcome.exit_code is None else outcome.exit_code)

    @staticmethod
    async def _next(queue: asyncio.Queue[bytes]) -> bytes:
        data = await queue.get()
        if not data:
            queue.put_nowait(b"")  # the end, for every later read too
        return data

    async def read_stdout(self) -> bytes:
        return await self._next(self._out)

    async def read_stderr(self) -> bytes:
        return await self._next(self._err)

    async def _send(self, data: bytes) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
            await self.ws.send_bytes(data)

    async def write_stdin(self, data: bytes) -> None:
        await self._send(ef.encode(ef.STDIN, data))

    async def close_stdin(self) -> None:
        # Only v5 has an end of input; under v4 (a server that offers no more) a command
        # reading to the end of its input runs until the session is closed, as with a tty.
        if self.ws.protocol == ef.V5:
            await self._send(ef.close_stdin())

    def resize(self, width: int, height: int) -> None:
        if self.tty:
            task = asyncio.ensure_future(self._send(ef.resize(width, height)))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        """Closing the socket is how the cloud learns the client went away."""
        await self.ws.close()
        await self.http.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
