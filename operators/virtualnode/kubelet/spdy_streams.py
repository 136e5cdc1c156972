"""The server end of a SPDY/3.1 connection as spdystream clients use it: the client opens
streams, the server accepts each at once (SYN_REPLY), both sides half-close with FIN.

Bytes come in through `feed` from whatever carries them: a WebSocket tunnel (port-forward
from kubectl 1.30 on) or a connection upgraded from HTTP (`Upgrade: SPDY/3.1`, what older
clients and kubectl's fallback send).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiohttp import web

from . import spdy

log = logging.getLogger(__name__)

class Stream:
    def __init__(self, conn: "SpdyConnection", frame: spdy.SynStream):
        self.conn = conn
        self.id = frame.stream_id
        self.headers = frame.headers
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False
        if frame.fin:
            self._incoming.put_nowait(b"")

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    async def read(self) -> bytes:
        """The next data from the client; b"" once it has half-closed (or reset) the stream."""
        data = await self._incoming.get()
        if not data:
            self._incoming.put_nowait(b"")  # stays at EOF for later readers
        return data

    async def write(self, data: bytes) -> None:
        if data and not self._closed:
            await self.conn.send(self.conn.writer.data(self.id, data))

    async def close(self) -> None:
        """Half-close: nothing more from this side."""
        if not self._closed:
            self._closed = True
            await self.conn.send(self.conn.writer.data(self.id, fin=True))


class SpdyConnection:
    def __init__(self, send: Callable[[bytes], Awaitable[None]]):
        self._send = send
        self.reader = spdy.FrameReader()
        self.writer = spdy.FrameWriter()
        self.streams: dict[int, Stream] = {}
        self._accepted: asyncio.Queue[Stream | None] = asyncio.Queue()
        # Frames go out whole and in order: header compression shares one context.
        self._lock = asyncio.Lock()
        self.gone = asyncio.Event()

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._send(frame)

    async def accept(self) -> Stream | None:
        """The next stream the client opens; None once it is gone."""
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)
        return stream

    async def feed(self, data: bytes) -> None:
        """Handle the client's bytes."""
        for frame in self.reader.feed(data):
            if isinstance(frame, spdy.SynStream):
                stream = self.streams[frame.stream_id] = Stream(self, frame)
                async with self._lock:
                    await self._send(self.writer.syn_reply(frame.stream_id))
                self._accepted.put_nowait(stream)
            elif isinstance(frame, spdy.Data):
                stream = self.streams.get(frame.stream_id)
                if stream is not None:
                    if frame.data:
                        stream._incoming.put_nowait(frame.data)
                    if frame.fin:
                        stream._incoming.put_nowait(b"")
            elif isinstance(frame, spdy.RstStream):
                stream = self.streams.pop(frame.stream_id, None)
                if stream is not None:
                    stream._closed = True
                    stream._incoming.put_nowait(b"")
            elif isinstance(frame, spdy.Ping):
                await self.send(self.writer.ping(frame.id))  # spdystream answers the peer's pings as they are
            elif isinstance(frame, spdy.GoAway):
                self.end()

    async def reset(self, stream: Stream, status: int = spdy.PROTOCOL_ERROR) -> None:
        self.streams.pop(stream.id, None)
        stream._closed = True
        await self.send(self.writer.rst_stream(stream.id, status))

    def end(self) -> None:
        """The client is gone: readers see the end of every stream."""
        self.gone.set()
        self._accepted.put_nowait(None)
        for stream in self.streams.values():
            stream._incoming.put_nowait(b"")

    async def run(self, incoming: Callable[[], Awaitable[bytes]], handler: Callable[["SpdyConnection"], Awaitable[None]]
                  ) -> None:
        """Feed the client's bytes (`incoming()`, b"" at the end) while `handler` serves the
        streams; the connection ends with the handler, or when the client leaves."""
        async def pump() -> None:
            try:
                while not self.gone.is_set() and (data := await incoming()):
                    await self.feed(data)
            except spdy.ProtocolError as exc:
                log.warning("closing a SPDY connection: %s", exc)
            except ConnectionError:
                pass  # the client went away
            finally:
                self.end()

        reading = asyncio.ensure_future(pump())
        try:
            await handler(self)
        finally:
            reading.cancel()
            self.end()


def is_spdy_upgrade(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower().startswith("spdy/3.1")
            and "upgrade" in request.headers.get("Connection", "").lower())


def client_protocols(request: web.Request) -> list[str]:
    return [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", []) for p in v.split(",")
            if p.strip()]


class _RawBytes:
    """Takes the place of aiohttp's HTTP parser on an upgraded connection."""

    def __init__(self, queue: asyncio.Queue):
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


async def upgrade(request: web.Request, protocol: str | None) -> tuple[web.StreamResponse, asyncio.Queue]:
    """Switch the HTTP connection to SPDY; returns the response to write to and the queue of
    the client's bytes. spdystream clients send nothing before the 101 arrives."""
    incoming: asyncio.Queue[bytes] = asyncio.Queue()
    request.protocol.set_parser(_RawBytes(incoming))  # type: ignore[union-attr, arg-type]
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    if protocol:
        headers["X-Stream-Protocol-Version"] = protocol
    resp = web.StreamResponse(status=101, headers=headers)
    resp.force_close()
    await resp.prepare(request)
    return resp, incoming


async def serve(request: web.Request, protocol: str | None,
                handler: Callable[[SpdyConnection], Awaitable[None]]) -> web.StreamResponse:
    """Serve a SPDY connection over the upgraded request."""
    resp, incoming = await upgrade(request, protocol)
    try:
        await SpdyConnection(resp.write).run(incoming.get, handler)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        if request.transport is not None:
            request.transport.close()
    return resp
