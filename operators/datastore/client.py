"""EtcdAuthClient: the calls of etcd's v3 API that the datastore's operator needs (auth
administration, and plain key reads/writes for a tenant's data), over gRPC (rpc.py) with
a client certificate of the datastore's CA. Which user the calls act as is the
certificate's CN: the operator's is `root`, a tenant apiserver's is the tenant's user.

Thin: one method per RPC, no policy (that is auth.py's)."""
from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import proto
from .rpc import PERMISSION_DENIED, Channel, GrpcError

_KV = "/etcdserverpb.KV/"
_AUTH = "/etcdserverpb.Auth/"
_ALREADY = ("etcdserver: user name already exists", "etcdserver: role name already exists")
_MISSING = ("etcdserver: user name not found", "etcdserver: role name not found",
            "etcdserver: role is not granted to the user", "etcdserver: permission is not granted to the role")


def is_already(exc: GrpcError) -> bool:
    return exc.message in _ALREADY


def is_missing(exc: GrpcError) -> bool:
    return exc.message in _MISSING


def is_denied(exc: GrpcError) -> bool:
    return exc.code == PERMISSION_DENIED  # "etcdserver: permission denied"


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class EtcdAuthClient:
    """`async with EtcdAuthClient(url, ca, cert, key) as etcd:`; url is https://host:port of
    an etcd client port (one member: the calls are few and the member forwards to the leader)."""

    def __init__(self, url: str, ca: Path, cert: Path, key: Path, *, timeout: float = 10.0):
        self.url = url
        self._channel = Channel(url, lambda: tls_context(ca, cert, key), timeout=timeout)

    async def __aenter__(self) -> EtcdAuthClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _auth(self, method: str, *fields) -> dict:
        return proto.decode(await self._channel.unary(_AUTH + method, proto.encode(*fields)))

    # --- auth administration (root only once auth is enabled) ---

    async def auth_enable(self) -> None:
        await self._auth("AuthEnable")

    async def auth_enabled(self) -> bool:
        return bool(proto.decode(await self._channel.unary(_AUTH + "AuthStatus", b"")).get(2, [0])[-1])

    async def user_add(self, name: str, *, no_password: bool = True) -> None:
        # AuthUserAddRequest{name = 1, options = 3: UserAddOptions{no_password = 1}}
        await self._auth("UserAdd", (1, name), (3, proto.encode((1, no_password)) or None))

    async def user_roles(self, name: str) -> list[str]:
        return proto.strings(await self._auth("UserGet", (1, name)), 2)

    async def user_list(self) -> list[str]:
        return proto.strings(await self._auth("UserList"), 2)

    async def user_delete(self, name: str) -> None:
        await self._auth("UserDelete", (1, name))

    async def user_grant_role(self, user: str, role: str) -> None:
        await self._auth("UserGrantRole", (1, user), (2, role))

    async def user_revoke_role(self, user: str, role: str) -> None:
        await self._auth("UserRevokeRole", (1, user), (2, role))

    async def role_add(self, name: str) -> None:
        await self._auth("RoleAdd", (1, name))

    async def role_permissions(self, name: str) -> list[proto.Permission]:
        return [proto.Permission.decode(bytes(p)) for p in (await self._auth("RoleGet", (1, name))).get(2, [])]

    async def role_delete(self, name: str) -> None:
        await self._auth("RoleDelete", (1, name))

    async def role_grant(self, name: str, perm: proto.Permission) -> None:
        await self._auth("RoleGrantPermission", (1, name), (2, perm.encode()))

    async def role_revoke(self, name: str, key: bytes, range_end: bytes) -> None:
        await self._auth("RoleRevokePermission", (1, name), (2, key), (3, range_end))

    # --- maintenance ---

    async def snapshot(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """The database as etcd streams it (root only): its bytes, then its SHA-256, to `write`."""
        async def blob(message: bytes) -> None:
            chunk = proto.decode(message).get(3, [b""])[-1]  # SnapshotResponse{blob = 3}
            if chunk:
                await write(bytes(chunk))
        await self._channel.call("/etcdserverpb.Maintenance/Snapshot", b"", blob)

    # --- keys ---

    async def get_range(self, key: bytes, range_end: bytes = b"", *, limit: int = 0) -> list[tuple[bytes, bytes]]:
        resp = await self._channel.unary(_KV + "Range", proto.encode((1, key), (2, range_end), (3, limit)))
        return proto.key_values(resp)

    async def count(self, key: bytes, range_end: bytes = b"") -> int:
        # RangeRequest{count_only = 9}; RangeResponse{count = 4}
        resp = proto.decode(await self._channel.unary(_KV + "Range",
                                                      proto.encode((1, key), (2, range_end), (9, True))))
        return int(resp.get(4, [0])[-1])

    async def revision(self) -> int:
        """The store's current revision (ResponseHeader{revision = 3} of any Range)."""
        resp = proto.decode(await self._channel.unary(_KV + "Range", proto.encode((1, b"\0"), (9, True), (3, 1))))
        return int(proto.decode(bytes(resp[1][-1])).get(3, [0])[-1])

    async def put(self, key: bytes, value: bytes) -> None:
        await self._channel.unary(_KV + "Put", proto.encode((1, key), (2, value)))

    async def delete_range(self, key: bytes, range_end: bytes = b"") -> int:
        resp = proto.decode(await self._channel.unary(_KV + "DeleteRange", proto.encode((1, key), (2, range_end))))
        return int(resp.get(2, [0])[-1])  # DeleteRangeResponse{deleted = 2}
