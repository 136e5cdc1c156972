"""SPDY/3.1 framing, the server side of what Kubernetes port forwarding speaks.

kubectl (moby/spdystream) opens streams with SYN_STREAM and expects a SYN_REPLY for each;
data goes in DATA frames, a FIN flag half-closes a stream. Name/value header blocks are
zlib-compressed with the SPDY/3 dictionary, one compression context per direction for the
whole connection. spdystream implements no flow control, so neither does this (SETTINGS
and WINDOW_UPDATE are read and ignored).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5
MAX_DATA = 0xFFFFFF

# The header dictionary of the SPDY/3 draft (section 2.6.10.1): length-prefixed words, then text.
_WORDS = (
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding',
    'accept-language', 'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection',
    'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location',
    'content-md5', 'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host',
    'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
    'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization',
    'range', 'referer', 'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade',
    'user-agent', 'vary', 'via', 'warning', 'www-authenticate', 'method', 'get', 'status', '200 OK',
    'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
)
_TAIL = (
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 No'
    'n-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403'
    ' Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Fe'
    'b Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunke'
    'd,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/'
    'javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.'
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + "".join(_TAIL).encode("latin1")


class ProtocolError(Exception):
    pass


@dataclass
class Data:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass
class SynStream:
    stream_id: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    fin: bool = False
    associated: int = 0
    priority: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass
class Ignored:
    """A control frame this server has no use for (SETTINGS, WINDOW_UPDATE, HEADERS, ...)."""
    type: int


def encode_headers(headers: dict[str, list[str]]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, list[str]]:
    try:
        (count,), pos, headers = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            headers[name.lower()] = block[pos + 4:pos + 4 + n].decode().split("\x00")
            pos += 4 + n
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid header block: {exc}") from None
    return headers


class FrameReader:
    """Frames from a byte stream that may split or join them arbitrarily."""

    def __init__(self):
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            flags, payload = flags_len >> 24, bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if word & 0x80000000:
                frames.append(self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload))
            else:
                frames.append(Data(word & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            return decode_headers(self._inflate.decompress(block))
        except zlib.error as exc:
            raise ProtocolError(f"header decompression: {exc}") from None

    def _control(self, version: int, type_: int, flags: int, payload: bytes):
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        try:
            if type_ == SYN_STREAM:
                sid, assoc, prio = struct.unpack_from(">IIB", payload)
                return SynStream(sid & 0x7FFFFFFF, self._headers(payload[10:]), bool(flags & FLAG_FIN),
                                 assoc & 0x7FFFFFFF, prio >> 5)
            if type_ == HEADERS:
                self._headers(payload[4:])  # keeps the shared compression context in step
                return Ignored(type_)
            if type_ == RST_STREAM:
                sid, status = struct.unpack_from(">II", payload)
                return RstStream(sid & 0x7FFFFFFF, status)
            if type_ == PING:
                return Ping(struct.unpack_from(">I", payload)[0])
            if type_ == GOAWAY:
                sid, status = struct.unpack_from(">II", payload) if len(payload) >= 8 else (
                    struct.unpack_from(">I", payload)[0], 0)
                return GoAway(sid & 0x7FFFFFFF, status)
        except struct.error:
            raise ProtocolError(f"short control frame of type {type_}") from None
        return Ignored(type_)


class FrameWriter:
    def __init__(self):
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    @staticmethod
    def _control(type_: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, type_, (flags << 24) | len(payload)) + payload

    def _compressed(self, headers: dict[str, list[str]]) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: dict[str, list[str]], *, fin: bool = False) -> bytes:
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + self._compressed(headers)
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, stream_id: int, headers: dict[str, list[str]] | None = None, *, fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._compressed(headers or {})
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, id_: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", id_))

    def goaway(self, last_good_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))

    @staticmethod
    def data(stream_id: int, data: bytes = b"", *, fin: bool = False) -> bytes:
        out = []
        for i in range(0, max(len(data), 1), MAX_DATA):
            chunk = data[i:i + MAX_DATA]
            last = i + MAX_DATA >= len(data)
            out.append(struct.pack(">II", stream_id, ((FLAG_FIN if fin and last else 0) << 24) | len(chunk)) + chunk)
        return b"".join(out)
