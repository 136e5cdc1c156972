"""`kubectl port-forward`: the kubelet's SPDY port-forward protocol (portforward.k8s.io).

kubectl tunnels SPDY through a WebSocket (`SPDY/3.1+portforward.k8s.io`), which the apiserver
passes on unchanged to a node declaring ExtendWebSocketsToKubelet. For each local
connection kubectl opens two streams with the same `requestid`: an `error` stream, on which
the kubelet writes a message if forwarding fails, and a `data` stream carrying the bytes to
and from `port` on the pod's localhost. Closing both ends one forwarded connection.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from . import spdy

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL

Dial = Callable[[int], Awaitable["tuple[asyncio.StreamReader, asyncio.StreamWriter]"]]


@dataclass
class _Pair:
    port: int | None = None
    error: int | None = None
    data: int | None = None
    to_pod: asyncio.Queue = field(default_factory=asyncio.Queue)  # client bytes; None: client FIN
    task: asyncio.Task | None = None


def _port(headers: dict[str, list[str]]) -> int | None:
    try:
        port = int((headers.get("port") or [""])[0])
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


class PortForwardSession:
    """One kubectl connection: reads SPDY frames from `feed`, writes frames with `send`."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], dial: Dial, pod: str):
        self._send = send
        self._dial = dial
        self._pod = pod
        self._reader = spdy.FrameReader()
        self._writer = spdy.FrameWriter()
        self._pairs: dict[str, _Pair] = {}
        self._stream_pair: dict[int, str] = {}
        self._lock = asyncio.Lock()  # one frame at a time, with the compression context in order
        self.closed = asyncio.Event()

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._send(frame)

    async def feed(self, data: bytes) -> None:
        for frame in self._reader.feed(data):
            await self._handle(frame)

    async def _handle(self, frame) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._new_stream(frame)
        elif isinstance(frame, spdy.Data):
            request = self._stream_pair.get(frame.stream_id)
            pair = self._pairs.get(request) if request is not None else None
            if pair is not None and frame.stream_id == pair.data:
                if frame.data:
                    pair.to_pod.put_nowait(frame.data)
                if frame.fin:
                    pair.to_pod.put_nowait(None)
        elif isinstance(frame, spdy.RstStream):
            request = self._stream_pair.pop(frame.stream_id, None)
            pair = self._pairs.pop(request, None) if request is not None else None
            if pair and pair.task:
                pair.task.cancel()
        elif isinstance(frame, spdy.Ping):
            await self.send(self._writer.ping(frame.id))  # spdystream's ping: answered as is
        elif isinstance(frame, spdy.GoAway):
            self.closed.set()

    async def _new_stream(self, frame: spdy.SynStream) -> None:
        async with self._lock:
            await self._send(self._writer.syn_reply(frame.stream_id))
        kind = (frame.headers.get("streamtype") or [""])[0]
        request = (frame.headers.get("requestid") or [""])[0]
        if kind not in ("error", "data"):
            await self.send(self._writer.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        pair = self._pairs.setdefault(request, _Pair())
        self._stream_pair[frame.stream_id] = request
        setattr(pair, kind, frame.stream_id)
        pair.port = _port(frame.headers)
        if pair.error is not None and pair.data is not None and pair.task is None:
            pair.task = asyncio.ensure_future(self._forward(request, pair))

    async def _forward(self, request: str, pair: _Pair) -> None:
        assert pair.error is not None and pair.data is not None
        message = ""
        try:
            if pair.port is None:
                raise ValueError("invalid port")
            reader, writer = await self._dial(pair.port)
        except Exception as exc:  # any failure to connect is the user's to see, as upstream
            message = (f"error forwarding port {pair.port} to pod {self._pod}: "
                       f"failed to connect to localhost:{pair.port} inside the pod: {exc}")
        else:
            message = await self._copy(pair, reader, writer)
        try:
            if message:
                await self.send(self._writer.data(pair.error, message.encode()))
            await self.send(self._writer.data(pair.data, fin=True))
            await self.send(self._writer.data(pair.error, fin=True))
        except (ConnectionError, RuntimeError):
            pass  # the client is gone
        finally:
            self._pairs.pop(request, None)
            self._stream_pair.pop(pair.error, None)
            self._stream_pair.pop(pair.data, None)

    async def _copy(self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        async def to_pod() -> None:
            try:
                while (chunk := await pair.to_pod.get()) is not None:
                    writer.write(chunk)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
            except ConnectionError:
                pass  # the pod closed the connection: the download side ends it

        uploading = asyncio.ensure_future(to_pod())
        try:
            # As the kubelet: forwarding ends when the pod's side closes the connection.
            while chunk := await reader.read(65536):
                await self.send(self._writer.data(pair.data, chunk))
            return ""
        except ConnectionError as exc:
            return f"error forwarding port {pair.port} to pod {self._pod}: {exc}"
        finally:
            uploading.cancel()
            writer.close()

    async def close(self) -> None:
        for pair in list(self._pairs.values()):
            if pair.task:
                pair.task.cancel()
        await asyncio.gather(*(p.task for p in self._pairs.values() if p.task), return_exceptions=True)
        self._pairs.clear()


def wants_tunnel(request: web.Request) -> bool:
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    return request.headers.get("Upgrade", "").lower() == "websocket" and TUNNEL_PROTOCOL in protocols


async def serve(request: web.Request, dial: Dial, pod: str) -> web.WebSocketResponse:
    """SPDY tunnelled through the WebSocket: the message boundaries mean nothing."""
    ws = web.WebSocketResponse(protocols=[TUNNEL_PROTOCOL], max_msg_size=0)
    await ws.prepare(request)
    session = PortForwardSession(ws.send_bytes, dial, pod)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            await session.feed(msg.data)
            if session.closed.is_set():
                break
    except spdy.ProtocolError as exc:
        log.warning("port-forward to %s: %s", pod, exc)
    except ConnectionResetError:
        pass
    finally:
        await session.close()
        await ws.close()
    return ws
