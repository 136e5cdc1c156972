"""The metapod provider's streaming side: logs, exec, attach and port-forward through the
meta apiserver's Pod subresources, which the meta kubelet serves (the virtual node, or
`sk8s sandbox-logs`, is the client; its meta credentials need pods/log get and
pods/exec, pods/attach, pods/portforward create and get).

- logs: GET pods/<name>/log streamed, every ContainerLogOpts field passed as the API's own
  parameter (follow, tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes);
- exec and attach: a WebSocket on pods/<name>/exec or /attach offering v5.channel.k8s.io
  (end of input) then v4: Kubernetes' channel framing, the session the aliyun provider's
  exec speaks too (aliyun/exec_session, aliyun/eci_exec_frames: stdin 0, stdout 1, stderr 2,
  the error channel's Status with the exit code 3, resize 4);
- port-forward: a WebSocket on pods/<name>/portforward?ports=<port> (v4.channel.k8s.io:
  channel 0 data, 1 error, each opened by the port as two little-endian bytes), bridged to
  a local socket pair whose one end is the connection handed out.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import socket
import struct
from typing import AsyncIterator, Callable

import aiohttp

from ... import kube
from ...kubeclient.client import KubeClient
from ..aliyun import eci_exec_frames as frames
from ..aliyun.exec_session import WebSocketSession
from ..errors import ProviderError
from ..logopts import ContainerLogOpts, truncated
from ..sandbox import SandboxRef
from ..sessions import StdioSession
from ..streaming import SandboxStreams
from .podbuild import PROVIDER
from .provider import pods_path

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10.0
LOST = "the meta apiserver's stream closed without the command's exit status"
PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1


def log_params(container: str, opts: ContainerLogOpts) -> dict[str, str]:
    """PodLogOptions as query parameters (pure)."""
    out = {"container": container}
    for key, value in (("follow", opts.follow), ("previous", opts.previous), ("timestamps", opts.timestamps)):
        if value:
            out[key] = "true"
    for key, value in (("tailLines", opts.tail), ("sinceSeconds", opts.since_seconds),
                       ("limitBytes", opts.limit_bytes)):
        if value is not None:
            out[key] = str(value)
    if opts.since_time is not None:
        out["sinceTime"] = opts.since_time.astimezone(dt.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    return out


def stdio_params(container: str, *, stdin: bool, tty: bool, command: list[str] | None = None) -> list[tuple[str, str]]:
    """exec's and attach's query: each argument its own `command` parameter (data, never a shell line)."""
    out = [("container", container), ("stdout", "true"), ("stderr", str(not tty).lower()),
           ("stdin", str(stdin).lower()), ("tty", str(tty).lower())]
    return out + [("command", arg) for arg in command or []]


def _api_failure(status: int, body: bytes, what: str) -> ProviderError:
    try:
        message = json.loads(body).get("message") or ""
    except ValueError:
        message = body.decode(errors="replace")[:500]
    reason = {404: "NotFound", 403: "Forbidden", 400: "BadRequest"}.get(status, "ProviderFailed")
    return ProviderError(f"{what}: {status} {message}".rstrip(), reason=reason, retryable=False)


class MetaPodStreams(SandboxStreams):
    name = PROVIDER

    def __init__(self, client: Callable[[], KubeClient] = kube.client):
        self._client = client

    def logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        return truncated(self._logs(ref, container, opts), opts.limit_bytes)

    async def _logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        client = self._client()
        url = client.creds.server + pods_path(ref.namespace, ref.instance_name, "log")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        try:
            async with client.session.get(url, params=log_params(container, opts), timeout=timeout,
                                          headers={"Accept": "*/*"}) as resp:
                if resp.status >= 400:
                    raise _api_failure(resp.status, await resp.read(), f"logs of {container}")
                async for chunk in resp.content.iter_any():
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProviderError(f"logs of {container}: the meta apiserver: {type(exc).__name__}",
                                reason="Unreachable", retryable=False) from None

    async def _connect(self, path: str, params: list[tuple[str, str]],
                       protocols: tuple[str, ...]) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
        """A WebSocket to the meta apiserver with this process's meta credentials, on a
        session of its own (closed with the stream)."""
        client = self._client()
        http = aiohttp.ClientSession(headers=dict(client.creds.headers),
                                     connector=aiohttp.TCPConnector(ssl=client.creds.ssl),
                                     timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
        try:
            ws = await http.ws_connect(client.creds.server + path, params=params, protocols=protocols,
                                       max_msg_size=0, heartbeat=30.0)
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise ProviderError(f"{path.rsplit('/', 1)[-1]}: the meta apiserver answered {exc.status} {exc.message}",
                                reason="NotFound" if exc.status == 404 else "ProviderFailed",
                                retryable=False) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            await http.close()
            raise ProviderError(f"{path.rsplit('/', 1)[-1]}: the meta apiserver: {type(exc).__name__}",
                                reason="Unreachable", retryable=False) from None
        return http, ws

    async def open_exec_session(self, ref: SandboxRef, container: str, command: list[str], *,
                                stdin: bool, tty: bool) -> StdioSession:
        http, ws = await self._connect(pods_path(ref.namespace, ref.instance_name, "exec"),
                                       stdio_params(container, stdin=stdin, tty=tty, command=list(command)),
                                       frames.PROTOCOLS)
        return WebSocketSession(http, ws, tty=tty, lost=LOST)

    async def open_attach_session(self, ref: SandboxRef, container: str, *, stdin: bool,
                                  tty: bool) -> StdioSession:
        http, ws = await self._connect(pods_path(ref.namespace, ref.instance_name, "attach"),
                                       stdio_params(container, stdin=stdin, tty=tty), frames.PROTOCOLS)
        return WebSocketSession(http, ws, tty=tty, lost=LOST)

    async def open_port_stream(self, ref: SandboxRef, port: int):
        http, ws = await self._connect(pods_path(ref.namespace, ref.instance_name, "portforward"),
                                       [("ports", str(port))], (PORTFORWARD_PROTOCOL,))
        mine, theirs = socket.socketpair()
        try:
            inner = await asyncio.open_connection(sock=mine)
            outer = await asyncio.open_connection(sock=theirs)
        except OSError:
            mine.close()
            theirs.close()
            await ws.close()
            await http.close()
            raise
        bridge = PortBridge(http, ws, port, *inner)
        bridge.start()
        return outer


class PortBridge:
    """One forwarded connection: the WebSocket's data channel <-> the inner socket."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, port: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.http, self.ws, self.port, self.reader, self.writer = http, ws, port, reader, writer
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._down()), asyncio.ensure_future(self._up())]
        asyncio.ensure_future(self._close_when_done())

    async def _down(self) -> None:
        """WebSocket -> socket; each channel's first two bytes are the port, not data."""
        opened = {DATA: False, ERROR: False}
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            frame = frames.decode(msg.data)
            if frame is None or frame.channel not in opened:
                continue
            data = frame.data
            if not opened[frame.channel]:
                head, data = data[:2], data[2:]
                opened[frame.channel] = True
                if head != port_header(self.port):  # not the port asked for: nothing to pass on
                    log.warning("port-forward %d: the stream opened with %r", self.port, head)
                    return
            if frame.channel == ERROR and data:
                log.info("port-forward %d: %s", self.port, data.decode(errors="replace"))
                return
            if data:
                self.writer.write(data)
                await self.writer.drain()

    async def _up(self) -> None:
        while data := await self.reader.read(65536):
            await self.ws.send_bytes(frames.encode(DATA, data))

    async def _close_when_done(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.http.close()


def port_header(port: int) -> bytes:
    """The two bytes that open each port-forward channel (little-endian)."""
    return struct.pack("<H", port)
