"""`kubectl port-forward`: the kubelet's SPDY port-forward protocol (portforward.k8s.io).

kubectl 1.30+ tunnels SPDY through a WebSocket (`SPDY/3.1+portforward.k8s.io`), which the
apiserver passes on unchanged to a node declaring ExtendWebSocketsToKubelet; older clients
upgrade the HTTP connection to SPDY itself. For each local connection the client opens two
streams with the same `requestid`: an `error` stream, on which the kubelet writes a message
if forwarding fails, and a `data` stream carrying the bytes to and from `port` on the pod's
localhost. Closing both ends one forwarded connection.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from . import spdy_streams
from .spdy_streams import SpdyConnection, Stream

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL

Dial = Callable[[int], Awaitable["tuple[asyncio.StreamReader, asyncio.StreamWriter]"]]


def _port(value: str) -> int | None:
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


async def forward_streams(conn: SpdyConnection, dial: Dial, pod: str) -> None:
    """Pair the client's streams by request id and forward each pair's connection."""
    waiting: dict[str, dict[str, Stream]] = {}
    running: set[asyncio.Task] = set()
    try:
        while (stream := await conn.accept()) is not None:
            kind = stream.header("streamtype")
            if kind not in ("error", "data"):
                await conn.reset(stream)
                continue
            pair = waiting.setdefault(stream.header("requestid"), {})
            pair[kind] = stream
            if len(pair) == 2:
                del waiting[stream.header("requestid")]
                task = asyncio.ensure_future(_forward(pair["error"], pair["data"], dial, pod))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _forward(error: Stream, data: Stream, dial: Dial, pod: str) -> None:
    port = _port(data.header("port"))
    try:
        if port is None:
            raise ValueError(f"invalid port {data.header('port')!r}")
        reader, writer = await dial(port)
    except Exception as exc:  # any failure to connect is the user's to see, as upstream
        message = (f"error forwarding port {port} to pod {pod}: "
                   f"failed to connect to localhost:{port} inside the pod: {exc}")
    else:
        message = await _copy(data, reader, writer, port, pod)
    try:
        if message:
            await error.write(message.encode())
        await data.close()
        await error.close()
    except (ConnectionError, RuntimeError):
        pass  # the client is gone


async def _copy(data: Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int,
                pod: str) -> str:
    async def to_pod() -> None:
        try:
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except ConnectionError:
            pass  # the pod closed the connection: the other direction ends it

    uploading = asyncio.ensure_future(to_pod())
    try:
        # As the kubelet: forwarding ends when the pod's side closes the connection.
        while chunk := await reader.read(65536):
            await data.write(chunk)
        return ""
    except ConnectionError as exc:
        return f"error forwarding port {port} to pod {pod}: {exc}"
    finally:
        uploading.cancel()
        writer.close()


def wants_tunnel(request: web.Request) -> bool:
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    return request.headers.get("Upgrade", "").lower() == "websocket" and TUNNEL_PROTOCOL in protocols


async def serve(request: web.Request, dial: Dial, pod: str) -> web.StreamResponse:
    if wants_tunnel(request):
        return await _serve_tunnel(request, dial, pod)
    if spdy_streams.is_spdy_upgrade(request) and PROTOCOL in spdy_streams.client_protocols(request):
        return await spdy_streams.serve(request, PROTOCOL, lambda conn: forward_streams(conn, dial, pod))
    raise web.HTTPBadRequest(text=f"port forwarding needs a WebSocket ({TUNNEL_PROTOCOL}) or an "
                                  f"Upgrade: SPDY/3.1 request with X-Stream-Protocol-Version: {PROTOCOL}\n")


async def _serve_tunnel(request: web.Request, dial: Dial, pod: str) -> web.WebSocketResponse:
    """SPDY tunnelled through the WebSocket: the message boundaries mean nothing."""
    ws = web.WebSocketResponse(protocols=[TUNNEL_PROTOCOL], max_msg_size=0)
    await ws.prepare(request)

    async def incoming() -> bytes:
        while (msg := await ws.receive()).type == WSMsgType.BINARY:
            if msg.data:
                return msg.data
        return b""

    try:
        await SpdyConnection(ws.send_bytes).run(incoming, lambda conn: forward_streams(conn, dial, pod))
    except ConnectionResetError:
        pass
    finally:
        await ws.close()
    return ws
