"""Unary gRPC calls over one HTTP/2 connection (h2), TLS with a client certificate.

Why not etcd's JSON gateway (which the embedded mode's cluster.py uses on the meta etcd):
with auth enabled and `--client-cert-auth`, the gateway refuses any request whose client
certificate has a CN ("CommonName of client sending a request against gateway will be
ignored and not used as expected", HTTP 400: server/embed/serve.go, accessController), and
etcd ignores the CN of requests the gateway proxies (auth/store.go, AuthInfoFromTLS: the
`grpcgateway-accept` metadata). Over the gateway only password tokens authenticate. gRPC
is what etcd maps a certificate's CN to a user on, and what the apiservers speak, so the
operator speaks it too: the root is a certificate (CN root), with no password anywhere.

One request at a time on a connection (the operator's calls are few and sequential); the
connection is opened on first use and opened anew after a failure. Responses are read as
they arrive (a snapshot streams the whole database), each message at most MAX_MESSAGE."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

MAX_MESSAGE = 16 * 1024 * 1024
PERMISSION_DENIED = 7


class GrpcError(Exception):
    """A call that ended with a non-zero grpc-status: `code` (codes.Code) and etcd's message."""

    def __init__(self, code: int, message: str):
        super().__init__(f"gRPC status {code}: {message}")
        self.code, self.message = code, message


def frame(message: bytes) -> bytes:
    """gRPC's length-prefixed message: not compressed, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def messages(buffer: bytearray) -> list[bytes]:
    """The complete length-prefixed messages at the start of `buffer`, taken out of it."""
    out = []
    while len(buffer) >= 5:
        if buffer[0] != 0:
            raise ConnectionError("a compressed or malformed gRPC message")
        size = int.from_bytes(buffer[1:5], "big")
        if size > MAX_MESSAGE:
            raise ConnectionError(f"a gRPC message of more than {MAX_MESSAGE} bytes")
        if len(buffer) < 5 + size:
            break
        out.append(bytes(buffer[5:5 + size]))
        del buffer[:5 + size]
    return out


class Channel:
    """`context`: the TLS context, made (reading certificate files) on the first connection,
    off the event loop."""

    def __init__(self, url: str, context: Callable[[], ssl.SSLContext], *, timeout: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise ValueError(f"not an https://host:port etcd URL: {url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.authority = f"{self.host}:{self.port}"
        self._make_context = context
        self._context: ssl.SSLContext | None = None
        self._lock = asyncio.Lock()
        self._conn: h2.connection.H2Connection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        if self._context is None:
            context = await asyncio.to_thread(self._make_context)
            context.set_alpn_protocols(["h2"])
            self._context = context
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=self._context, server_hostname=self.host)
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding="utf-8"))
        self._conn.initiate_connection()
        await self._flush()

    async def _flush(self) -> None:
        pending = self._conn.data_to_send()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()

    async def close(self) -> None:
        writer, self._conn, self._reader, self._writer = self._writer, None, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass

    async def unary(self, method: str, request: bytes) -> bytes:
        """Call `method` ("/etcdserverpb.Auth/UserAdd") with an encoded request message; the
        encoded response, GrpcError for an error status, ConnectionError for a broken exchange."""
        answers: list[bytes] = []

        async def keep(message: bytes) -> None:
            answers.append(message)
        await self.call(method, request, keep)
        if len(answers) != 1:
            raise ConnectionError(f"etcd {self.authority} {method}: {len(answers)} response messages")
        return answers[0]

    async def call(self, method: str, request: bytes, sink: Callable[[bytes], Awaitable[None]]) -> None:
        """Any call, the response messages given to `sink` as they arrive (a server stream:
        Maintenance/Snapshot). `timeout` bounds each wait for the server, not the call."""
        async with self._lock:
            try:
                await self._call(method, request, sink)
            except GrpcError:
                raise
            except (OSError, ssl.SSLError, asyncio.TimeoutError, h2.exceptions.ProtocolError) as exc:
                await self.close()
                raise ConnectionError(f"etcd {self.authority} {method}: {exc!r}") from None
            except ConnectionError:
                await self.close()
                raise

    async def _call(self, method: str, request: bytes, sink: Callable[[bytes], Awaitable[None]]) -> None:
        if self._conn is None:
            await asyncio.wait_for(self._connect(), self.timeout)
        conn = self._conn
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "POST"), (":scheme", "https"), (":path", method),
                                   (":authority", self.authority), ("content-type", "application/grpc"),
                                   ("te", "trailers")])
        conn.send_data(stream, frame(request), end_stream=True)
        await self._flush()
        headers: dict[str, str] = {}
        data = bytearray()
        ended = False
        while not ended:
            chunk = await asyncio.wait_for(self._reader.read(65536), self.timeout)
            if not chunk:
                raise ConnectionError("etcd closed the connection")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and ev.stream_id == stream:
                    headers.update((str(k), str(v)) for k, v in ev.headers)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == stream:
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, stream)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == stream:
                    raise ConnectionError(f"stream reset (HTTP/2 error {ev.error_code})")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"connection closed (HTTP/2 error {ev.error_code})")
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream:
                    ended = True
            await self._flush()
            for message in messages(data):
                await sink(message)
        if data:
            raise ConnectionError("a truncated gRPC message at the end of the response")
        status = headers.get("grpc-status", "")
        if not status.isdigit():
            raise ConnectionError(f"no grpc-status (HTTP status {headers.get(':status', '?')})")
        if int(status):
            raise GrpcError(int(status), unquote(headers.get("grpc-message", "")))
