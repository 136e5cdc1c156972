"""The kubelet's gRPC probe (pkg/probe/grpc): grpc.health.v1.Health/Check over HTTP/2,
plaintext or TLS (not verified), with the kubelet's messages.

One call on a stream the caller opened inside the pod's network namespace (prober.py);
only the health method is ever called, with the tenant's `service` as the one field of the
request, and at most MAX_RESPONSE bytes of the answer are read, since the server is the
tenant's."""
from __future__ import annotations

import asyncio
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions

PATH = "/grpc.health.v1.Health/Check"
MAX_RESPONSE = 64 * 1024
SERVING = 1
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
CODE_NAMES = {1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
              6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition",
              10: "Aborted", 11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable",
              15: "DataLoss", 16: "Unauthenticated"}
UNIMPLEMENTED = 12


class RPCError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"rpc error: code = {CODE_NAMES.get(code, f'Code({code})')} desc = {message}")
        self.code, self.message = code, message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def request_message(service: str) -> bytes:
    """A HealthCheckRequest{service} in gRPC's length-prefixed framing (pure)."""
    encoded = service.encode()
    body = b"\x0a" + _varint(len(encoded)) + encoded if encoded else b""
    return b"\x00" + len(body).to_bytes(4, "big") + body


def response_status(message: bytes) -> int:
    """The `status` of a framed HealthCheckResponse (0, UNKNOWN, when absent); ValueError
    for anything else than one uncompressed protobuf message (pure)."""
    if len(message) < 5 or message[0] != 0 or int.from_bytes(message[1:5], "big") != len(message) - 5:
        raise ValueError("malformed gRPC message")
    body, i, status = message[5:], 0, 0
    while i < len(body):
        key, i = _read_varint(body, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(body, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _read_varint(body, i)
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError("malformed HealthCheckResponse")
    if i != len(body):
        raise ValueError("malformed HealthCheckResponse")
    return status


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("malformed varint")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


async def check(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, authority: str, service: str,
                tls: bool, user_agent: str) -> int:
    """The serving status the server answers; RPCError for a gRPC error status, ConnectionError
    or ValueError for a broken exchange."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "POST"), (":scheme", "https" if tls else "http"), (":path", PATH),
                               (":authority", authority), ("content-type", "application/grpc"),
                               ("te", "trailers"), ("user-agent", user_agent)])
    conn.send_data(stream, request_message(service), end_stream=True)
    writer.write(conn.data_to_send())
    await writer.drain()
    headers: dict[str, str] = {}
    data = b""
    ended = False
    while not ended:
        chunk = await reader.read(16384)
        if not chunk:
            raise ConnectionError("the server closed the connection before answering")
        try:
            events = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as exc:
            raise ConnectionError(f"HTTP/2 protocol error: {exc}") from None
        for ev in events:
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) and ev.stream_id == stream:
                headers.update((str(k), str(v)) for k, v in ev.headers)
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == stream:
                data += ev.data
                if len(data) > MAX_RESPONSE:
                    raise ValueError(f"a health response of more than {MAX_RESPONSE} bytes")
                conn.acknowledge_received_data(ev.flow_controlled_length, stream)
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == stream:
                raise ConnectionError(f"stream reset by the server (error code {ev.error_code})")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ConnectionError(f"connection closed by the server (error code {ev.error_code})")
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream:
                ended = True
        pending = conn.data_to_send()
        if pending:
            writer.write(pending)
            await writer.drain()
    code = headers.get("grpc-status")
    if code is None or not code.isdigit():
        raise RPCError(2, f"no grpc-status in the answer (HTTP status {headers.get(':status', '?')})")
    if int(code) != 0:
        raise RPCError(int(code), unquote(headers.get("grpc-message", "")))
    return response_status(data)
