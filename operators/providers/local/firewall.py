"""VPC isolation that does not depend on netavark's.

netavark 1.4's `isolate=true` rules are lost for every network as soon as any isolated
network is torn down (deleting one tenant opened the others to each other). Each VPC
therefore gets rules of ours, in the raw table before routing: packets from its subnet
to any other address of the VPC pool are dropped. Traffic inside a VPC is bridged and
never matches; the host's own traffic (load balancers, health checks) does not pass
PREROUTING.

Two more closings of the same kind: a VPC may not reach the installation's own sandbox
network (the meta-cluster admins' SandboxPods, outside the pool), and it may not open
connections to this host itself (filter INPUT, new connections only, so the replies to
the host's own load balancers and health checks pass): everything a tenant pod needs from
sk8s (resolver, intranet load balancers) lives inside its VPC, and a service that
happens to listen on all of the host's addresses (rpcbind, say) is none of its business.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
TABLE = ("-t", "raw")
CHAIN = "PREROUTING"
HOST_TABLE = ("-t", "filter")
HOST_CHAIN = "INPUT"


def rules(subnet: str, pool: str, tag: str, protected: tuple[str, ...] = ()) -> list[list[str]]:
    """Raw PREROUTING, in order: the VPC's own traffic passes (ACCEPT ends only the raw
    table), the rest of the pool and the `protected` networks are dropped."""
    comment = ["-m", "comment", "--comment", tag]
    return [["-s", subnet, "-d", subnet, *comment, "-j", "ACCEPT"],
            ["-s", subnet, "-d", pool, *comment, "-j", "DROP"],
            *(["-s", subnet, "-d", net, *comment, "-j", "DROP"] for net in protected)]


def host_rules(subnet: str, tag: str) -> list[list[str]]:
    """Filter INPUT: no new connection from the VPC to this host."""
    return [["-s", subnet, "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", tag,
             "-j", "DROP"]]


def tag_of(home_id: str, vpc_id: str) -> str:
    return f"sk8s:{home_id}:{vpc_id[:12]}"


async def _iptables(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("iptables", "-w", "5", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def _insert(table: tuple[str, str], chain: str, specs: list[list[str]], subnet: str) -> None:
    for spec in reversed(specs):  # each inserted at the top: the first ends first
        rc, _ = await _iptables(*table, "-C", chain, *spec)
        if rc != 0:
            rc, out = await _iptables(*table, "-I", chain, "1", *spec)
            if rc != 0:
                raise RuntimeError(f"isolating VPC {subnet}: {out.strip()}")


async def isolate(subnet: str, pool: str, tag: str, protected: tuple[str, ...] = ()) -> None:
    await _insert(TABLE, CHAIN, rules(subnet, pool, tag, protected), subnet)
    await _insert(HOST_TABLE, HOST_CHAIN, host_rules(subnet, tag), subnet)


async def release(tag_prefix: str) -> None:
    """Remove every rule whose comment starts with `tag_prefix` (one VPC, or a whole home)."""
    for table, chain in ((TABLE, CHAIN), (HOST_TABLE, HOST_CHAIN)):
        rc, out = await _iptables(*table, "-S", chain)
        for line in out.splitlines() if rc == 0 else []:
            if f'--comment "{tag_prefix}' in line or f"--comment {tag_prefix}" in line:
                args = line.split()[2:]  # drop "-A CHAIN"
                args = [a.strip('"') for a in args]
                rc2, msg = await _iptables(*table, "-D", chain, *args)
                if rc2 != 0:
                    log.warning("removing isolation rule %s: %s", line, msg.strip())
