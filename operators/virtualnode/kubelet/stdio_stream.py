"""One `kubectl exec`/`attach` session: a provider stdio session bridged to the client with
the remote command protocol (see remotecommand.py), over a WebSocket (kubectl 1.30+, which
the apiserver passes on as it is) or over SPDY (older clients, kubectl's fallback, and
client-go programs that still use the SPDY executor)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from ...providers.errors import ProviderError
from ...providers.sessions import StdioSession
from . import remotecommand as rc
from . import spdy_streams
from .spdy_streams import SpdyConnection, Stream

log = logging.getLogger(__name__)

# Output the command wrote before it exited is still in flight: bounded, since a
# process left behind in the container may hold a pipe open.
_DRAIN_SECONDS = 5
# The kubelet's wait for the client's streams (DefaultStreamCreationTimeout).
_STREAM_CREATION_SECONDS = 30
SPDY_PROTOCOLS = (rc.V5, rc.V4)  # the same protocol over SPDY: streams half-close by themselves

Opener = Callable[[], Awaitable[StdioSession]]
Send = Callable[[int, bytes], Awaitable[None]]


def requested_protocols(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _open(open_session: Opener, exec_: bool) -> StdioSession | bytes:
    """The session, or the status that reports why there is none."""
    try:
        return await open_session()
    except (ProviderError, OSError) as exc:
        verb = "executing command in" if exec_ else "attaching to"
        return rc.status_internal_error(f"error {verb} container: {exc}")


async def _run(session: StdioSession, opts: rc.StreamOptions, *, exec_: bool, send: Send,
               inputs: list[Awaitable[None]], gone: Awaitable) -> bytes | None:
    """Stream the session's output with `send` while `inputs` feed it, until it ends; the
    status to report then, or None if the client went away first (`gone`)."""
    async def pump(read: Callable[[], Awaitable[bytes]], channel: int, wanted: bool) -> None:
        # Unwanted output is read all the same, or a full pipe would stall the command.
        while data := await read():
            if wanted:
                await send(channel, data)

    pumps = [asyncio.ensure_future(pump(session.read_stdout, rc.STDOUT, opts.stdout)),
             asyncio.ensure_future(pump(session.read_stderr, rc.STDERR, opts.stderr))]
    feeding = [asyncio.ensure_future(i) for i in inputs]
    left = asyncio.ensure_future(gone)
    exited = asyncio.ensure_future(session.wait())
    try:
        await asyncio.wait([left, exited], return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            return None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pumps), _DRAIN_SECONDS)
        code = exited.result()
        # Attach has no exit code of its own: the kubelet reports success when the
        # streams end.
        return rc.status_exit_code(code) if exec_ and code else rc.status_success()
    finally:
        for task in (left, exited, *pumps, *feeding):
            task.cancel()
        await session.close()


async def serve(request: web.Request, opts: rc.StreamOptions, open_session: Opener,
                *, exec_: bool) -> web.StreamResponse:
    if is_websocket(request):
        return await _serve_websocket(request, opts, open_session, exec_=exec_)
    offered = spdy_streams.client_protocols(request)
    protocol = next((p for p in offered if p in SPDY_PROTOCOLS), None)
    if not spdy_streams.is_spdy_upgrade(request) or protocol is None:
        # The kubelet's answer (the older protocols are not served here).
        raise web.HTTPForbidden(text=f"unable to upgrade: unable to negotiate protocol: client supports "
                                     f"{offered}, server supports {list(SPDY_PROTOCOLS)}\n")
    return await spdy_streams.serve(request, protocol, lambda conn: _serve_spdy(conn, opts, open_session, exec_))


async def _serve_websocket(request: web.Request, opts: rc.StreamOptions, open_session: Opener,
                           *, exec_: bool) -> web.WebSocketResponse:
    requested = requested_protocols(request)
    if requested and not any(p in rc.PROTOCOLS for p in requested):
        raise web.HTTPBadRequest(text=f"requested protocol(s) are not supported: {requested}; "
                                      f"supports {list(rc.PROTOCOLS)}\n")
    ws = web.WebSocketResponse(protocols=rc.PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    # No subprotocol asked for: the kubelet's oldest, binary framing.
    protocol = ws.ws_protocol or rc.PRE_V4
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        frame = rc.encode(protocol, channel, data)
        async with lock:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)

    async def from_client(session: StdioSession) -> None:
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

    try:
        # As upstream: an empty first frame tells the client the streams are set up.
        await send(rc.STDOUT if opts.stdout else rc.STDERR if opts.stderr else rc.ERROR, b"")
        session = await _open(open_session, exec_)
        status = session if isinstance(session, bytes) else await _run(
            session, opts, exec_=exec_, send=send, inputs=[], gone=from_client(session))
        if status is not None:
            message = rc.status_for(protocol, status)
            if message is not None:
                await send(rc.ERROR, message)
            await ws.close()
    except ConnectionResetError:
        pass  # the client went away
    return ws


async def _spdy_streams(conn: SpdyConnection, opts: rc.StreamOptions) -> dict[str, Stream] | None:
    """The streams the client opens for these options (as the kubelet expects them)."""
    expected = {"error"} | {name for name, wanted in (("stdin", opts.stdin), ("stdout", opts.stdout),
                                                      ("stderr", opts.stderr), ("resize", opts.tty)) if wanted}
    streams: dict[str, Stream] = {}
    with contextlib.suppress(asyncio.TimeoutError):
        async with asyncio.timeout(_STREAM_CREATION_SECONDS):
            while not expected <= streams.keys():
                stream = await conn.accept()
                if stream is None:
                    return None
                kind = stream.header("streamtype")
                if kind in expected:
                    streams[kind] = stream
                else:
                    await conn.reset(stream)
            return streams
    log.warning("remote command: the client opened %s of the streams %s in time", sorted(streams), sorted(expected))
    return None


async def _serve_spdy(conn: SpdyConnection, opts: rc.StreamOptions, open_session: Opener, exec_: bool) -> None:
    streams = await _spdy_streams(conn, opts)
    if streams is None:
        return
    session = await _open(open_session, exec_)
    if isinstance(session, bytes):
        status: bytes | None = session
    else:
        async def send(channel: int, data: bytes) -> None:
            await streams["stdout" if channel == rc.STDOUT else "stderr"].write(data)

        async def stdin(stream: Stream) -> None:
            while data := await stream.read():
                await session.write_stdin(data)
            await session.close_stdin()

        async def resizes(stream: Stream) -> None:
            decoder = rc.ResizeDecoder()
            while data := await stream.read():
                for width, height in decoder.feed(data):
                    session.resize(width, height)

        inputs = [stdin(streams["stdin"])] if "stdin" in streams else []
        inputs += [resizes(streams["resize"])] if "resize" in streams else []
        status = await _run(session, opts, exec_=exec_, send=send, inputs=inputs, gone=conn.gone.wait())
    if status is not None:
        # Output first: the client reads the status once stdout and stderr have ended.
        for name in ("stdout", "stderr"):
            if name in streams:
                await streams[name].close()
        await streams["error"].write(status)
        await streams["error"].close()
