"""ECI's ExecContainerCommand: a command run in a running container of a group.

The call checks its parameters as the cloud does (Command a JSON array of at most 20
strings of at most 256 characters each; Sync only without TTY; the group Running and the
container running, else IncorrectStatus, "The current status of ContainerName:<name> does
not support this operation.", the message the cloud gives; the code is our choice). Then:

- Sync=true runs the command at once and answers its output (stdout then stderr) in
  SyncResponse, with no stdin, up to SYNC_TIMEOUT seconds;
- otherwise it answers a WebSocketUri (`ws://<host>/exec/?s=<ticket>`, the cloud's
  `wss://eci-<region>.aliyun.com/exec/?s=...` shape) and an HttpUrl. The ticket is
  unguessable, good for one connection, within TICKET_SECONDS (the cloud's HttpUrl is good
  for 30 s). The command starts when the WebSocket connects, its stdio bridged to it in
  the framing of providers/aliyun/eci_exec_frames.py by the group's backend (`exec`).
  The HttpUrl's browser terminal is not served (501).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ...providers.aliyun import eci_exec_frames as ef
from ...providers.errors import ProviderError
from ...providers.sessions import StdioSession
from . import params as p
from .accounts import DEFAULT
from .errors import ApiError, invalid, missing

TICKET_SECONDS = 30.0
SYNC_TIMEOUT = 10.0
MAX_ARGS, MAX_ARG_CHARS = 20, 256
DRAIN_SECONDS = 5.0
WS_PATH, HTTP_PATH = "/exec/", "/terminal"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecRequest:
    group_id: str
    container: str
    command: list[str]
    tty: bool
    stdin: bool
    sync: bool
    account: str = DEFAULT  # the caller's (accounts.py): the group must be its, when asked and when opened


def parse(params: dict[str, str], account: str = DEFAULT) -> ExecRequest:
    gid, container = p.text(params, "ContainerGroupId"), p.text(params, "ContainerName")
    if gid is None:
        raise missing("ContainerGroupId")
    if container is None:
        raise missing("ContainerName")
    command = p.json_list(params, "Command", limit=MAX_ARGS)
    if not command:
        raise missing("Command")
    if any(len(arg) > MAX_ARG_CHARS for arg in command):
        raise invalid("Command", f"Each command is at most {MAX_ARG_CHARS} characters.")
    tty, sync = p.boolean(params, "TTY"), p.boolean(params, "Sync")
    if sync and tty:
        raise invalid("TTY", "TTY must be false when Sync is true.")
    return ExecRequest(gid, container, command, tty, p.boolean(params, "Stdin", True), sync, account)


def incorrect_status(container: str) -> ApiError:
    return ApiError(403, "IncorrectStatus", f"The current status of ContainerName:{container} "
                                            "does not support this operation.")


@dataclass(frozen=True)
class Ticket:
    request: ExecRequest
    expires: float


class Tickets:
    """One-time, short-lived permissions to open an exec WebSocket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, lifetime: float = TICKET_SECONDS):
        self.clock, self.lifetime = clock, lifetime
        self._by_token: dict[str, Ticket] = {}

    def issue(self, request: ExecRequest) -> str:
        now = self.clock()
        self._by_token = {t: k for t, k in self._by_token.items() if k.expires > now}
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Ticket(request, now + self.lifetime)
        return token

    def take(self, token: str) -> ExecRequest | None:
        ticket = self._by_token.pop(token, None)
        if ticket is None or ticket.expires <= self.clock():
            return None
        return ticket.request


async def run_sync(session: StdioSession, timeout: float = SYNC_TIMEOUT) -> str:
    """The output of a command run without input: stdout, then stderr (what it wrote within
    `timeout`, if it runs longer)."""
    out, err = bytearray(), bytearray()

    async def collect(read: Callable[[], Awaitable[bytes]], buf: bytearray) -> None:
        while data := await read():
            buf += data

    try:
        await session.close_stdin()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(collect(session.read_stdout, out), collect(session.read_stderr, err))
                await session.wait()
    finally:
        await session.close()
    return (bytes(out) + bytes(err)).decode(errors="replace")


async def bridge(ws: web.WebSocketResponse, session: StdioSession) -> None:
    """The session's stdio over the WebSocket until the command exits (its status is sent,
    the socket closed) or the client goes away (the command is stopped)."""
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            await ws.send_bytes(ef.encode(channel, data))

    async def pump(read: Callable[[], Awaitable[bytes]], channel: int) -> None:
        while data := await read():
            await send(channel, data)

    pumps = [asyncio.ensure_future(pump(session.read_stdout, ef.STDOUT)),
             asyncio.ensure_future(pump(session.read_stderr, ef.STDERR))]
    inbound = asyncio.ensure_future(_from_client(ws, session))
    exited = asyncio.ensure_future(session.wait())
    try:
        await asyncio.wait([inbound, exited], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pumps), DRAIN_SECONDS)
            await send(ef.ERROR, ef.exit_status(exited.result()))
            await ws.close()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        for task in (inbound, exited, *pumps):
            task.cancel()
        await session.close()


async def _from_client(ws: web.WebSocketResponse, session: StdioSession) -> None:
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break
        frame = ef.decode(msg.data)
        if frame is None:
            continue
        if frame.close and frame.channel == ef.STDIN:
            await session.close_stdin()
        elif frame.channel == ef.STDIN and not frame.close:
            await session.write_stdin(frame.data)
        elif frame.channel == ef.RESIZE:
            size = ef.parse_resize(frame.data)
            if size is not None:
                session.resize(*size)


async def serve(request: web.Request, tickets: Tickets,
                open_session: Callable[[ExecRequest], Awaitable[StdioSession]]) -> web.StreamResponse:
    """The exec WebSocket of a ticket (`?s=`): refused before the upgrade when the ticket is
    unknown, used or expired."""
    exec_request = tickets.take(request.query.get("s", ""))
    if exec_request is None:
        raise web.HTTPForbidden(text="the exec URI is unknown, used or expired\n")
    ws = web.WebSocketResponse(protocols=ef.PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    try:
        session = await open_session(exec_request)
    except (ApiError, ProviderError, OSError) as exc:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_bytes(ef.encode(ef.ERROR, ef.failure_status(str(exc))))
            await ws.close()
        return ws
    await bridge(ws, session)
    return ws


async def terminal(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotImplemented(text="the emulator serves no browser terminal: use the WebSocketUri\n")


def answer(host: str, token: str) -> dict[str, Any]:
    return {"WebSocketUri": f"ws://{host}{WS_PATH}?s={token}", "HttpUrl": f"http://{host}{HTTP_PATH}?param={token}"}
