"""VPC isolation that does not depend on netavark's.

netavark 1.4's `isolate=true` rules are lost for every network as soon as any isolated
network is torn down (deleting one tenant opened the others to each other). Each VPC
therefore gets rules of ours, in the raw table before routing: packets from its subnet
to any other address of the VPC pool are dropped. Traffic inside a VPC is bridged and
never matches; the host's own traffic (load balancers, health checks) does not pass
PREROUTING.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
TABLE = ("-t", "raw")
CHAIN = "PREROUTING"


def rules(subnet: str, pool: str, tag: str) -> list[list[str]]:
    """In order: the VPC's own traffic passes (ACCEPT ends only the raw table), the rest of
    the pool is dropped."""
    comment = ["-m", "comment", "--comment", tag]
    return [["-s", subnet, "-d", subnet, *comment, "-j", "ACCEPT"],
            ["-s", subnet, "-d", pool, *comment, "-j", "DROP"]]


def tag_of(home_id: str, vpc_id: str) -> str:
    return f"sk8s:{home_id}:{vpc_id[:12]}"


async def _iptables(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("iptables", "-w", "5", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def isolate(subnet: str, pool: str, tag: str) -> None:
    for spec in reversed(rules(subnet, pool, tag)):  # each inserted at the top: the first ends first
        rc, _ = await _iptables(*TABLE, "-C", CHAIN, *spec)
        if rc != 0:
            rc, out = await _iptables(*TABLE, "-I", CHAIN, "1", *spec)
            if rc != 0:
                raise RuntimeError(f"isolating VPC {subnet}: {out.strip()}")


async def release(tag_prefix: str) -> None:
    """Remove every rule whose comment starts with `tag_prefix` (one VPC, or a whole home)."""
    rc, out = await _iptables(*TABLE, "-S", CHAIN)
    for line in out.splitlines() if rc == 0 else []:
        if f'--comment "{tag_prefix}' in line or f"--comment {tag_prefix}" in line:
            args = line.split()[2:]  # drop "-A PREROUTING"
            args = [a.strip('"') for a in args]
            rc2, msg = await _iptables(*TABLE, "-D", CHAIN, *args)
            if rc2 != 0:
                log.warning("removing isolation rule %s: %s", line, msg.strip())
