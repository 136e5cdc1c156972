"""The few protobuf messages of etcd's API this package speaks, encoded and decoded by hand
(proto3 wire format: varints and length-delimited fields), so the operator needs no
generated stubs and no grpcio. All pure."""
from __future__ import annotations

from dataclasses import dataclass

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _uvarint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # proto3 int64: two's complement in ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(*fields: tuple[int, bytes | str | int | bool | None]) -> bytes:
    """A message from (field number, value) pairs: bytes, str and an encoded sub-message go
    length-delimited, int and bool as varints; None and proto3 defaults are left out."""
    out = bytearray()
    for number, value in fields:
        if value is None or value is False or value == 0 or value in (b"", ""):
            continue
        if isinstance(value, (bool, int)):
            out += _uvarint(number << 3 | _VARINT) + _uvarint(int(value))
        else:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            out += _uvarint(number << 3 | _LEN) + _uvarint(len(raw)) + raw
    return bytes(out)


def decode(data: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> its values in order (varints as int, the rest as bytes); ValueError
    for a truncated or malformed message."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0

    def uvarint() -> int:
        nonlocal pos
        value = 0
        for shift in range(0, 70, 7):
            if pos >= len(data):
                raise ValueError("truncated varint")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise ValueError("varint longer than ten bytes")

    while pos < len(data):
        key = uvarint()
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value: int | bytes = uvarint()
        elif wire in (_LEN, _I64, _I32):
            size = uvarint() if wire == _LEN else (8 if wire == _I64 else 4)
            if pos + size > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


# authpb.Permission.Type
READ, WRITE, READWRITE = 0, 1, 2


@dataclass(frozen=True)
class Permission:
    """authpb.Permission: a key range [key, range_end) and what a role may do there."""
    perm_type: int
    key: bytes
    range_end: bytes

    def encode(self) -> bytes:
        return encode((1, self.perm_type), (2, self.key), (3, self.range_end))

    @classmethod
    def decode(cls, data: bytes) -> Permission:
        f = decode(data)
        return cls(int(f.get(1, [0])[-1]), bytes(f.get(2, [b""])[-1]), bytes(f.get(3, [b""])[-1]))


def strings(fields: dict[int, list[int | bytes]], number: int) -> list[str]:
    return [bytes(v).decode() for v in fields.get(number, [])]


def key_values(range_response: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) of each mvccpb.KeyValue in a RangeResponse (kvs = 2; key = 1, value = 5)."""
    out = []
    for kv in decode(range_response).get(2, []):
        f = decode(bytes(kv))
        out.append((bytes(f.get(1, [b""])[-1]), bytes(f.get(5, [b""])[-1])))
    return out
