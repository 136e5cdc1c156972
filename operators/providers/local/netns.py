"""Sockets inside another network namespace (a VPC's anchor pod), owned by this process.

setns() changes only the calling thread's namespace, so a short-lived thread enters the
namespace, creates and binds the socket, and ends; the socket stays in that namespace
while the process's other threads (the event loop) keep the host's.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from typing import Callable

CLONE_NEWNET = 0x40000000
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


def _run_in(netns: str, make: Callable[[], socket.socket]) -> socket.socket:
    result: dict = {}

    def run() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                result["sock"] = make()
            finally:
                _setns(own)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=run, name="netns-socket")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def connect_in(netns: str, port: int, timeout: float = 5) -> socket.socket:
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
    sock = await asyncio.get_running_loop().run_in_executor(None, connect_in, netns, port)
    return await asyncio.open_connection(sock=sock)


async def ip(netns: str, *args: str) -> tuple[int, str]:
    """`ip ARGS` inside the namespace (adding and removing service addresses)."""
    proc = await asyncio.create_subprocess_exec("nsenter", f"--net={netns}", "ip", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()
