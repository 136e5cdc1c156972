"""One `kubectl exec`/`attach` session: a provider stdio session bridged to the client's
WebSocket with the remote command protocol (see remotecommand.py)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from ..providers.base import ProviderError, StdioSession
from . import remotecommand as rc

log = logging.getLogger(__name__)

# Output the command wrote before it exited is still in flight: bounded, since a
# process left behind in the container may hold a pipe open.
_DRAIN_SECONDS = 5


def requested_protocols(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def serve(request: web.Request, opts: rc.StreamOptions, open_session: Callable[[], Awaitable[StdioSession]],
                *, exec_: bool) -> web.WebSocketResponse:
    if not any(p in rc.PROTOCOLS for p in requested_protocols(request)):
        raise web.HTTPBadRequest(text=f"requested protocol(s) are not supported: {requested_protocols(request)}; "
                                      f"supports {list(rc.PROTOCOLS)}\n")
    ws = web.WebSocketResponse(protocols=rc.PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    protocol = ws.ws_protocol or rc.V5
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        frame = rc.encode(protocol, channel, data)
        async with lock:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)

    # As upstream: an empty first frame tells the client the streams are set up.
    await send(rc.STDOUT if opts.stdout else rc.STDERR if opts.stderr else rc.ERROR, b"")
    try:
        session = await open_session()
    except (ProviderError, OSError) as exc:
        verb = "executing command in" if exec_ else "attaching to"
        await send(rc.ERROR, rc.status_internal_error(f"error {verb} container: {exc}"))
        await ws.close()
        return ws

    async def pump(read: Callable[[], Awaitable[bytes]], channel: int, wanted: bool) -> None:
        # Unwanted output is read all the same, or a full pipe would stall the command.
        while data := await read():
            if wanted:
                await send(channel, data)

    async def from_client() -> None:
        resize = rc.ResizeDecoder()
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            frame = rc.decode(protocol, msg.data)
            if frame is None:
                continue
            if frame.close:
                if frame.channel == rc.STDIN:
                    await session.close_stdin()
            elif frame.channel == rc.STDIN and opts.stdin:
                await session.write_stdin(frame.data)
            elif frame.channel == rc.RESIZE and opts.tty:
                for width, height in resize.feed(frame.data):
                    session.resize(width, height)

    pumps = [asyncio.ensure_future(pump(session.read_stdout, rc.STDOUT, opts.stdout)),
             asyncio.ensure_future(pump(session.read_stderr, rc.STDERR, opts.stderr))]
    client = asyncio.ensure_future(from_client())
    exited = asyncio.ensure_future(session.wait())
    try:
        await asyncio.wait([client, exited], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pumps), _DRAIN_SECONDS)
            code = exited.result()
            # Attach has no exit code of its own: the kubelet reports success when the
            # streams end.
            status = rc.status_exit_code(code) if exec_ and code else rc.status_success()
            await send(rc.ERROR, status)
            await ws.close()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        for task in (client, exited, *pumps):
            task.cancel()
        await session.close()
    return ws
