"""Sockets inside another network namespace (a VPC's anchor pod, a pod's for port-forward
and probes), owned by this process.

setns() changes only the calling thread's namespace, so a short-lived thread enters the
namespace, creates and binds the socket, and ends; the socket stays in that namespace
while the process's other threads (the event loop) keep the host's.
"""
from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import socket
import threading
from typing import Callable, TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def bind_in(netns: str | None, host: str, port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A bound (and, for TCP, listening) non-blocking socket in `netns` (None: this namespace)."""
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            if kind == socket.SOCK_STREAM:
                s.listen(1024)
            s.setblocking(False)
            return s
        except BaseException:
            s.close()
            raise

    return make() if netns is None else _run_in(netns, make)


def socket_in(netns: str, family: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """An unconnected non-blocking socket of `netns`. A socket belongs for life to the
    namespace it was created in, so it can then be connected from the event loop's thread
    (no thread blocked for the connect) and still reaches only that namespace's addresses."""
    def make() -> socket.socket:
        s = socket.socket(family, kind)
        s.setblocking(False)
        return s
    return _run_in(netns, make)


async def connect_in(netns: str, host: str, port: int) -> socket.socket:
    """A socket connected to host:port from inside `netns`. `host` must be an IP literal:
    nothing is resolved, least of all with the host's resolver."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket_in(netns, family)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def call_in(netns: str, fn: Callable[[], T]) -> T:
    """`fn()` run by a short-lived thread inside `netns` (anything a namespace's own
    kernel objects must be made for: sockets, nftables rules)."""
    return _run_in(netns, fn)


def _run_in(netns: str, make: Callable[[], T]) -> T:
    result: dict = {}

    def run() -> None:
        fds: list[int] = []
        try:  # a namespace that is gone (the sandbox removed) is the caller's error too
            fds.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY))
            fds.append(os.open(netns, os.O_RDONLY))
            _setns(fds[1])
            try:
                result["sock"] = make()
            finally:
                _setns(fds[0])
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            for fd in fds:
                os.close(fd)

    t = threading.Thread(target=run, name="netns-socket")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def connect_localhost_in(netns: str, port: int, timeout: float = 5) -> socket.socket:
    """A non-blocking socket connected to localhost:port in `netns`, as the kubelet's
    port-forward connects: it reaches servers listening only on the pod's loopback."""
    def make() -> socket.socket:
        errors = []
        for family, addr, name in ((socket.AF_INET, "127.0.0.1", "IPv4"), (socket.AF_INET6, "::1", "IPv6")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect((addr, port))
            except OSError as exc:
                s.close()
                errors.append(f"{name}: {exc.strerror or exc}")
                continue
            s.setblocking(False)
            return s
        raise ConnectionRefusedError(", ".join(errors))
    return _run_in(netns, make)


async def open_connection(netns: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await asyncio.get_running_loop().run_in_executor(None, connect_localhost_in, netns, port)
    return await asyncio.open_connection(sock=sock)


async def ip(netns: str, *args: str) -> tuple[int, str]:
    """`ip ARGS` inside the namespace (adding and removing service addresses)."""
    proc = await asyncio.create_subprocess_exec("nsenter", f"--net={netns}", "ip", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()
