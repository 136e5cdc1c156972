"""The tenant apiserver's egress proxy: HTTP CONNECT on a Unix socket in the plane's directory.

kube-apiserver's egress selector (`--egress-selector-config-file`, types `cluster` and
`controlplane`, see serverlesscluster/egress.py) sends every connection to a webhook,
conversion webhook, aggregated API, pod or service proxy and kubelet here as
`CONNECT host:port`. Each one is judged by `policy.decide`; a refusal is a `403` whose
reason phrase the apiserver puts in its error (`proxy error ... code 403: 403 127.0.0.1
is this host ...`), so the tenant sees why. Nothing is sent after the `200` until the
client speaks (the apiserver checks that).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Awaitable, Callable

from .policy import Decision, EgressPolicy, literal_address, parse_authority, pick, reason_phrase

log = logging.getLogger(__name__)
HEAD_LIMIT = 8192
HEAD_TIMEOUT = 10.0
DIAL_TIMEOUT = 10.0
CHUNK = 65536

REFUSAL_LOG_EVERY = 60.0   # seconds: one log line per refused destination in that time
REFUSAL_LOG_KEYS = 1024    # destinations remembered; a tenant cannot grow this without bound

PolicySource = Callable[[], Awaitable[EgressPolicy]]


class RefusalLog:
    """Refusals are logged, but a tenant decides how many there are (each webhook call to a
    refused address is one): a destination is logged once a period, with the count of the
    refusals not logged since."""

    def __init__(self, every: float = REFUSAL_LOG_EVERY, keys: int = REFUSAL_LOG_KEYS,
                 clock: Callable[[], float] = time.monotonic):
        self.every, self.keys, self.clock = every, keys, clock
        self._seen: dict[tuple[str, int], tuple[float, int]] = {}  # -> (last logged, suppressed)

    def refused(self, host: str, port: int, reason: str) -> None:
        now, key = self.clock(), (host, port)
        last, suppressed = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.every:
            self._seen[key] = (last, suppressed + 1)
            return
        if key not in self._seen and len(self._seen) >= self.keys:
            self._seen.clear()
        self._seen[key] = (now, 0)
        log.warning("egress refused: %r port %d: %s%s", host, port, reason,
                    f" ({suppressed} more refusals not logged)" if suppressed else "")
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def host_resolver(host: str, port: int) -> list[str]:
    """Addresses of a name by this host's resolver (odd spellings such as `127.1` included):
    only the answer is judged, and the judged address is the one dialled."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def resolve(host: str, port: int, policy: EgressPolicy, resolver: Resolver) -> tuple[str | None, Decision]:
    literal = literal_address(host)
    if literal is not None:
        return pick([str(literal)], port, policy)
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        return None, Decision(False, f"{host} does not resolve: {exc}")
    if not addresses:
        return None, Decision(False, f"{host} resolves to no address")
    address, decision = pick(addresses, port, policy)
    if not decision.allowed:
        return None, Decision(False, f"{host} -> {decision.reason}")
    return address, decision


class EgressProxy:
    def __init__(self, path: str, policy: PolicySource, resolver: Resolver = host_resolver):
        self.path = path
        self.policy = policy
        self.resolver = resolver
        self.refusals = RefusalLog()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # A socket left by an earlier run of this node is replaced (asyncio removes it).
        old = os.umask(0o177)  # only this host's root (the apiserver's user) may connect
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=self.path)
        finally:
            os.umask(old)
        log.info("egress proxy for the tenant apiserver on %s", self.path)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        except Exception:
            log.exception("egress proxy connection failed")
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            return await _reply(writer, 431, "request head too large")
        if len(head) > HEAD_LIMIT:
            return await _reply(writer, 431, "request head too large")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT":
            return await _reply(writer, 405, "only CONNECT is served")
        try:
            host, port = parse_authority(parts[1])
        except ValueError as exc:
            return await _reply(writer, 400, f"bad CONNECT target: {exc}")
        address, decision = await resolve(host, port, await self.policy(), self.resolver)
        if address is None:
            self.refusals.refused(host, port, decision.reason)
            return await _reply(writer, 403, decision.reason)
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(address, port), DIAL_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            return await _reply(writer, 502, f"dialing {address}:{port}: {exc or 'timed out'}")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        finally:
            up_w.close()


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    writer.write(f"HTTP/1.1 {status} {reason_phrase(reason)}\r\nContent-Length: 0\r\n"
                 f"Connection: close\r\n\r\n".encode("ascii"))
    await writer.drain()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, RuntimeError):
            pass
