"""The data plane of a local load balancer: TCP and UDP proxies over a shared backend set.

Protocol-level relaying (no stream objects, no per-chunk coroutines) with flow control in
both directions. A new connection goes to the next healthy backend (round robin); a
backend that refuses or times out is marked unhealthy on the spot and the connection
fails over to the next one, so a removed or dead pod costs a retry, not an error.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Above the 1 s of a first SYN retransmission: a backlog-full backend is slow, not dead.
CONNECT_TIMEOUT = 3.0
UDP_IDLE = 30.0
HIGH_WATER = 256 * 1024


STICKY_MAX = 65536  # client addresses remembered per listener (sessionAffinity ClientIP)


@dataclass
class BackendSet:
    """Backend addresses of one listener, and what the health checks think of them.

    With session affinity (a Service's `sessionAffinity: ClientIP`), a client address keeps
    the backend it was given while it connects again within `affinity` seconds, each
    connection renewing it (kube-proxy's `recent` match); a backend that went away or is
    unhealthy is not kept."""

    targets: list[tuple[str, int]] = field(default_factory=list)
    unhealthy: set[tuple[str, int]] = field(default_factory=set)
    affinity: float | None = None
    _rr: itertools.count = field(default_factory=itertools.count)
    _sticky: dict[str, tuple[tuple[str, int], float]] = field(default_factory=dict)

    def replace(self, targets: list[tuple[str, int]]) -> None:
        self.targets = list(targets)
        self.unhealthy &= set(targets)

    def set_affinity(self, seconds: float | None) -> None:
        if seconds != self.affinity:
            self.affinity = seconds
            self._sticky.clear()

    def order(self, client: str | None = None) -> list[tuple[str, int]]:
        """Healthy backends first, from a rotating start; the unhealthy ones as a last resort;
        a client's sticky backend before all."""
        if not self.targets:
            return []
        n = next(self._rr) % len(self.targets)
        rotated = self.targets[n:] + self.targets[:n]
        out = [t for t in rotated if t not in self.unhealthy] + [t for t in rotated if t in self.unhealthy]
        kept = self._sticky.get(client) if self.affinity and client else None
        if kept and kept[1] > time.monotonic() and kept[0] in self.targets and kept[0] not in self.unhealthy:
            out.remove(kept[0])
            out.insert(0, kept[0])
        return out

    def chose(self, client: str | None, target: tuple[str, int]) -> None:
        """The backend a client's connection went to: kept for it under session affinity."""
        if not self.affinity or not client:
            return
        now = time.monotonic()
        if len(self._sticky) >= STICKY_MAX:
            self._sticky = {c: v for c, v in self._sticky.items() if v[1] > now}
            if len(self._sticky) >= STICKY_MAX:
                self._sticky.clear()
        self._sticky[client] = (target, now + self.affinity)

    def healthy_count(self) -> int:
        return sum(1 for t in self.targets if t not in self.unhealthy)


class _Relay(asyncio.Protocol):
    """One side of a proxied connection; `peer` is the other side's relay."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Relay | None = None
        self.pending: list[bytes] = []
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self):
        if self.peer and self.peer.transport and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
            return True  # half-close: keep reading the other direction
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.peer and self.peer.transport:
            self.peer.transport.close()

    # Flow control: when our outgoing buffer fills, stop reading from the peer.
    def pause_writing(self) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.resume_reading()


class _Front(_Relay):
    def __init__(self, backends: BackendSet, stats: "Stats") -> None:
        super().__init__()
        self.backends = backends
        self.stats = stats

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.set_write_buffer_limits(HIGH_WATER)
        transport.pause_reading()
        self.stats.connections += 1
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        peer = self.transport.get_extra_info("peername") if self.transport else None
        client = peer[0] if peer else None
        for target in self.backends.order(client):
            if self.closed:
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):  # unlike wait_for, no extra task per connection
                    _, back = await loop.create_connection(_Relay, *target)
            except (OSError, TimeoutError):
                self.backends.unhealthy.add(target)
                self.stats.failovers += 1
                continue
            back.transport.set_write_buffer_limits(HIGH_WATER)
            if self.closed:
                back.transport.close()
                return
            back.peer, self.peer = self, back
            self.backends.chose(client, target)
            for chunk in self.pending:
                back.transport.write(chunk)
            self.pending.clear()
            self.transport.resume_reading()
            return
        self.stats.rejected += 1
        self.transport.abort()  # nothing to serve it: a reset, as an SLB with no backends


@dataclass
class Stats:
    connections: int = 0
    failovers: int = 0
    rejected: int = 0


class _UdpSession(asyncio.DatagramProtocol):
    def __init__(self, front: "_UdpFront", client: tuple) -> None:
        self.front = front
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.last = time.monotonic()
        if self.front.transport:
            self.front.transport.sendto(data, self.client)

    def error_received(self, exc) -> None:
        target = self.transport.get_extra_info("peername") if self.transport else None
        if target:
            self.front.backends.unhealthy.add(target)


class _UdpFront(asyncio.DatagramProtocol):
    """UDP: one upstream socket per client address, kept while the flow is active."""

    def __init__(self, backends: BackendSet, stats: Stats) -> None:
        self.backends = backends
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple, _UdpSession] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        session = self.sessions.get(addr)
        if session and session.transport and not session.transport.is_closing():
            session.last = time.monotonic()
            session.transport.sendto(data)
            return
        asyncio.get_running_loop().create_task(self._open(data, addr))

    async def _open(self, data: bytes, addr) -> None:
        order = self.backends.order()
        if not order:
            self.stats.rejected += 1
            return
        loop = asyncio.get_running_loop()
        transport, session = await loop.create_datagram_endpoint(
            lambda: _UdpSession(self, addr), remote_addr=order[0])
        self.sessions[addr] = session
        self.stats.connections += 1
        transport.sendto(data)

    def expire(self) -> None:
        now = time.monotonic()
        for addr, s in list(self.sessions.items()):
            if now - s.last > UDP_IDLE or (s.transport and s.transport.get_extra_info("peername")
                                            not in self.backends.targets):
                if s.transport:
                    s.transport.close()
                self.sessions.pop(addr, None)

    def close(self) -> None:
        for s in self.sessions.values():
            if s.transport:
                s.transport.close()
        self.sessions.clear()
        if self.transport:
            self.transport.close()


class Listener:
    """One listening port of a load balancer, proxying to `backends`."""

    def __init__(self, protocol: str, sock: socket.socket, backends: BackendSet) -> None:
        self.protocol = protocol
        self.sock = sock
        self.backends = backends
        self.stats = Stats()
        self._server: asyncio.AbstractServer | None = None
        self._udp: _UdpFront | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.protocol == "UDP":
            _, self._udp = await loop.create_datagram_endpoint(
                lambda: _UdpFront(self.backends, self.stats), sock=self.sock)
        else:
            self._server = await loop.create_server(lambda: _Front(self.backends, self.stats), sock=self.sock)

    def housekeeping(self) -> None:
        if self._udp:
            self._udp.expire()

    async def close(self) -> None:
        if self._udp:
            self._udp.close()
        if self._server:
            self._server.close()
        self.sock.close()


async def check_tcp(target: tuple[str, int], timeout: float = 0.5) -> bool:
    """A TCP connect, as SLB's TCP health check does."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*target), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
