"""The wake listener: where a sleeping tenant's endpoint leads (wakerules.py), one for all.

A connection to a sleeping tenant's endpoint arrives here, its original port read back
from conntrack (SO_ORIGINAL_DST). The listener waits for the client's first bytes (a TLS
ClientHello): a bare connect, such as a load balancer's TCP health check of the tenant's
`kubernetes` Service, wakes nothing. Then it asks for the plane to be woken, and once the
apiserver answers it relays the connection there, the bytes it read first included: the
client sees a slow handshake, never an error. Connections made during a wake all wait for
the same one (the waker is single-flight per port).

Its own connections to the apiserver carry wakerules.MARK, so that the rule which brought
the client here does not bring the relay back here too. The waking apiserver's connections
to itself (its loopback client, which its start-up hooks use before it is ready) are
diverted here too: they name LOOPBACK_SNI in their ClientHello and are relayed as soon as
it listens, or its readiness would wait for connections waiting for its readiness.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from pathlib import Path
from typing import Awaitable, Callable

from .wakerules import MARK

log = logging.getLogger(__name__)
SO_ORIGINAL_DST = 80
# What "answering" means for a woken apiserver: ready, but for the two bootstrap hooks that
# only re-create defaults its etcd already holds (they end a second after the rest).
READYZ = ("/readyz?exclude=poststarthook/rbac/bootstrap-roles"
          "&exclude=poststarthook/scheduling/bootstrap-system-priority-classes")
FIRST_BYTES_TIMEOUT = 30.0
# How long a client's handshake waits for readiness before it is relayed to an apiserver
# that listens but is not ready yet: client-go gives a TLS handshake 10 s, and a loaded
# machine can take longer than that to start an apiserver.
READY_BUDGET = 6.0
# k8s.io/apiserver/pkg/server: LoopbackClientServerNameOverride.
LOOPBACK_SNI = b"apiserver-loopback-client"


def original_port(sock) -> int:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    return struct.unpack_from("!2xH", raw)[0]


async def _marked_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_marked(port: int, **tls) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:`port` past the wake rule (to the apiserver itself)."""
    return await asyncio.open_connection(sock=await _marked_socket(port), **tls)


async def listens(port: int) -> bool:
    try:
        _, writer = await connect_marked(port)
    except OSError:
        return False
    writer.close()
    return True


async def apiserver_answers(port: int, ca: Path, timeout: float = 2.0) -> bool:
    """Whether the apiserver on `port` is ready (anonymous /readyz, which RBAC allows)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await connect_marked(port, ssl=ctx, server_hostname="127.0.0.1")
            try:
                writer.write(f"GET {READYZ} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                line = await reader.readline()
            finally:
                writer.close()
        return line.split()[1:2] == [b"200"]
    except (OSError, asyncio.TimeoutError, ssl.SSLError, IndexError):
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


class WakeListener:
    """`waker(port, loopback)`: wakes the plane whose endpoint is `port`; True once its
    apiserver answers (`loopback`: the apiserver's own connection, once it listens)."""

    def __init__(self, waker: Callable[[int, bool], Awaitable[bool]]):
        self.waker = waker
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer = None
        try:
            port = original_port(writer.get_extra_info("socket"))
            async with asyncio.timeout(FIRST_BYTES_TIMEOUT):
                first = await reader.read(65536)
            if not first:
                return  # connected and left: a health check
            try:
                async with asyncio.timeout(READY_BUDGET):
                    woke = await self.waker(port, LOOPBACK_SNI in first)
            except TimeoutError:  # the wake goes on (the waker shields it); listening will do
                woke = await self.waker(port, True)
            if not woke:
                log.warning("a connection for port %d: no plane woke; closing it", port)
                return
            up_reader, up_writer = await connect_marked(port)
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.debug("wake relay ended: %s", exc)
        finally:
            writer.close()
            if up_writer is not None:
                up_writer.close()
