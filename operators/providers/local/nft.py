"""The kernel side of local load balancers: nft, conntrack and two sysctls, as CLIs.

Rulesets are built by lbrules.py and handed to `nft -f -` on stdin (data, never a shell
string); a namespace other than the host's is entered with `nsenter --net=PATH`.

Two settings make the kernel path possible, each with its guard:
- `route_localnet` on a bridge that internet LBs forward to: a connection to 127.N.x.y has
  the source 127.0.0.1, which may not leave through a non-loopback device otherwise (the
  source is then masqueraded to the gateway). The same setting would let packets for 127/8
  arrive from the bridge (kube-proxy's CVE-2020-8558), so a host-wide table drops any packet
  for 127/8 that does not arrive on `lo`: what the kernel does by default, restated.
- `ip_forward` in a VPC's anchor namespace, which forwards an intranet LB's traffic back onto
  its bridge; the anchor's table forwards nothing but that (DNATed) traffic.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import re
from pathlib import Path

from . import lbrules
from . import netns as nsutil

log = logging.getLogger(__name__)
GUARD_TABLE = "sk8s-lb-guard"
ANCHOR_TABLE = "sk8s-lb-anchor"
_DEV = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


async def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError as exc:
        return 127, f"{exc.filename or argv[0]}: not installed"
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(errors="replace").strip()


def _in(netns: str | None, argv: list[str]) -> list[str]:
    return argv if netns is None else ["nsenter", f"--net={netns}", *argv]


def _libnftables() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        return None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    return lib


_LIB = _libnftables()


def _run_lib(commands: str) -> tuple[int, str]:
    ctx = _LIB.nft_ctx_new(0)
    try:
        _LIB.nft_ctx_buffer_output(ctx)
        _LIB.nft_ctx_buffer_error(ctx)
        rc = _LIB.nft_run_cmd_from_buffer(ctx, commands.encode())
        out = _LIB.nft_ctx_get_output_buffer(ctx) if rc == 0 else _LIB.nft_ctx_get_error_buffer(ctx)
        return (1 if rc else 0), (out or b"").decode(errors="replace").strip()
    finally:
        _LIB.nft_ctx_free(ctx)


async def _nft(commands: str, netns: str | None) -> tuple[int, str]:
    """libnftables in this process when it loads (in a thread, which enters `netns`: no
    fork and exec per change, which a loaded 2-core machine makes slow), else the CLI."""
    if _LIB is None:
        return await _run(_in(netns, ["nft", "-f", "-"]), stdin=commands)
    if netns is None:
        return await asyncio.to_thread(_run_lib, commands)
    try:
        return await asyncio.to_thread(nsutil.call_in, netns, lambda: _run_lib(commands))
    except OSError as exc:  # the namespace is gone
        return 1, str(exc)


async def apply(script: str, netns: str | None = None) -> tuple[int, str]:
    """One nft transaction: all of `script` or nothing."""
    return await _nft(script, netns)


async def tables(prefix: str, netns: str | None = None) -> list[str]:
    rc, out = await _nft(f"list tables {lbrules.FAMILY}", netns)
    return lbrules.tables_in(out, prefix) if rc == 0 else []


async def drop_tables(names: list[str], netns: str | None = None) -> None:
    if names:
        rc, out = await apply("".join(lbrules.delete(n) for n in names), netns)
        if rc != 0:
            log.warning("removing nft tables %s: %s", ", ".join(names), out)


async def forget_udp(netns: str | None, address: str, port: int, backend: str) -> None:
    """Ends the UDP flows from `address:port` to a backend no longer served: conntrack would
    keep a client's flow on it while the client keeps sending (kube-proxy does the same)."""
    argv = ["conntrack", "-D", "-p", "udp", "--orig-dst", lbrules.ipv4(address), "--orig-port-dst", str(port),
            "--reply-src", lbrules.ipv4(backend)]
    rc, out = await _run(_in(netns, argv))  # rc 1 with "0 flow entries": nothing to end
    if rc == 127:
        log.warning("UDP flows to removed backends end only when idle (30 s): %s", out)


async def device_of(address: str) -> str | None:
    """The interface holding `address` on this host (a bridge's gateway)."""
    rc, out = await _run(["ip", "-o", "-4", "addr", "show", "to", f"{lbrules.ipv4(address)}/32"])
    parts = out.split() if rc == 0 else []
    dev = parts[1] if len(parts) > 1 else ""
    return dev if _DEV.match(dev) else None


def guard_script() -> str:
    return (f"{lbrules.delete(GUARD_TABLE)}table {lbrules.FAMILY} {GUARD_TABLE} {{\n"
            "  chain input {\n"
            "    type filter hook prerouting priority raw; policy accept;\n"
            '    iif != "lo" ip daddr 127.0.0.0/8 drop\n'
            "  }\n}\n")


async def open_localnet(gateway: str) -> None:
    """Lets 127.0.0.1-sourced packets out through the bridge holding `gateway`, guard first."""
    rc, out = await apply(guard_script())
    if rc != 0:
        raise RuntimeError(f"the 127/8 guard: {out}")
    dev = await device_of(gateway)
    if dev is None:
        raise RuntimeError(f"no interface holds {gateway}")
    path = Path("/proc/sys/net/ipv4/conf") / dev / "route_localnet"
    if path.read_text().strip() != "1":
        path.write_text("1\n")


def anchor_script() -> str:
    return (f"{lbrules.delete(ANCHOR_TABLE)}table {lbrules.FAMILY} {ANCHOR_TABLE} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority filter; policy drop;\n"
            "    ct status dnat accept\n"
            "  }\n}\n")


async def open_anchor(netns: str) -> None:
    """The anchor forwards its intranet LBs' traffic, and nothing else."""
    rc, out = await apply(anchor_script(), netns)
    if rc != 0:
        raise RuntimeError(f"the anchor's forward table: {out}")
    rc, out = await _run(_in(netns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    if rc != 0:
        raise RuntimeError(f"ip_forward in the anchor: {out}")
