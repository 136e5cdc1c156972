"""The nftables rules of a local load balancer that forwards in the kernel: pure builders.

Shaped after kube-proxy's nftables mode. One table per load balancer, in the network
namespace where its address lives:

- internet (127.x on this host): the host's namespace, hook `output` (the clients are this
  host's own processes); the source is masqueraded to the bridge's gateway, since a
  127.0.0.1 source cannot leave through a bridge (the bridge needs `route_localnet`, see
  nft.py for the guard that keeps that from opening 127/8 to the bridge's side);
- intranet (an address of the VPC's anchor pod): the anchor's namespace, hook
  `prerouting` (the clients, the VPC's pods and the host, arrive on the anchor's eth0);
  the anchor forwards to the backend on the same bridge, masqueraded so that the reply
  comes back through it.

    chain entry (hook output|prerouting, priority -100: dstnat; nft 1.0.6 names it for prerouting only):
        ip daddr A meta l4proto . th dport vmap { tcp . 80 : goto l-tcp-80, ... }
    chain l-tcp-80:   [ip saddr @a-tcp-80-0 goto b-tcp-80-0 ...]  (sessionAffinity ClientIP)
                      numgen inc mod N vmap { 0 : goto b-tcp-80-0, ... }   (round robin)
    chain b-tcp-80-0: [update @a-tcp-80-0 { ip saddr }] meta l4proto tcp dnat to IP:PORT
    chain source (hook postrouting, 100: srcnat): ct status dnat ct original ip daddr A masquerade

A listener without backends is left out of the map: its packets reach the namespace's own
stack, where nothing listens (a TCP reset, an ICMP port unreachable), as an SLB without
backends refuses. Every value is validated here (addresses parsed as IPv4, ports and
protocols checked) before it is written into a ruleset: endpoints are tenant data.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

FAMILY = "ip"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$")


@dataclass(frozen=True)
class Route:
    """One listener and the backends it forwards to now (healthy ones, in order)."""
    protocol: str  # "TCP" | "UDP"
    port: int
    targets: tuple[tuple[str, int], ...]


def ipv4(value: str) -> str:
    """`value` as a canonical IPv4 address, or ValueError: nothing else reaches a ruleset."""
    return str(ipaddress.IPv4Address(value))


def _port(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"not a port: {value!r}")
    return value


def _proto(value: str) -> str:
    if value not in ("TCP", "UDP"):
        raise ValueError(f"not a protocol the kernel path serves: {value!r}")
    return value.lower()


def table_name(prefix: str, lb_id: str) -> str:
    name = f"{prefix}{lb_id}"
    if not _NAME.match(name):
        raise ValueError(f"not a table name: {name!r}")
    return name


def ruleset(table: str, address: str, hook: str, routes: list[Route],
            affinity_seconds: int | None = None) -> str:
    """The whole table, replacing any previous one in a single transaction."""
    if hook not in ("output", "prerouting"):
        raise ValueError(f"not a hook: {hook!r}")
    table = table_name("", table)
    address = ipv4(address)
    if affinity_seconds is not None and (not isinstance(affinity_seconds, int) or affinity_seconds < 1):
        raise ValueError(f"not an affinity timeout: {affinity_seconds!r}")
    sets: list[str] = []
    listeners: list[str] = []
    chains: list[str] = []
    dispatch: list[str] = []
    for r in routes:
        proto, port = _proto(r.protocol), _port(r.port)
        targets = [(ipv4(ip), _port(p)) for ip, p in r.targets]
        if not targets:
            continue
        lname = f"l-{proto}-{port}"
        dispatch.append(f"{proto} . {port} : goto {lname}")
        body = []
        verdicts = []
        for i, (ip, p) in enumerate(targets):
            bname = f"b-{proto}-{port}-{i}"
            rules = []
            if affinity_seconds:
                aset = f"a-{proto}-{port}-{i}"
                sets.append(_block("set", aset, ["type ipv4_addr", "flags dynamic,timeout",
                                                 f"timeout {affinity_seconds}s"]))
                body.append(f"ip saddr @{aset} goto {bname}")
                rules.append(f"update @{aset} {{ ip saddr }}")
            rules.append(f"meta l4proto {proto} dnat to {ip}:{p}")
            chains.append(_block("chain", bname, rules))
            verdicts.append(f"{i} : goto {bname}")
        body.append(f"numgen inc mod {len(targets)} vmap {{ {', '.join(verdicts)} }}")
        listeners.append(_block("chain", lname, body))
    nat = [f"type nat hook {hook} priority -100; policy accept;"]
    if dispatch:
        nat.append(f"ip daddr {address} meta l4proto . th dport vmap {{ {', '.join(dispatch)} }}")
    snat = ["type nat hook postrouting priority 100; policy accept;",
            f"ct status dnat ct original ip daddr {address} masquerade"]
    # (chain names avoid nft's keywords: "nat" and "snat" are not names it accepts)
    parts = [*sets, _block("chain", "entry", nat), *listeners, *chains, _block("chain", "source", snat)]
    inner = "\n".join(parts)
    return f"{delete(table)}table {FAMILY} {table} {{\n{inner}\n}}\n"


def delete(table: str) -> str:
    """Removes the table whether or not it exists (nft 1.0.6 has no `destroy`: an `add`
    first makes the `delete` always valid)."""
    table = table_name("", table)
    return f"add table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"


def _block(kind: str, name: str, lines: list[str]) -> str:
    # nft 1.0.6 wants a newline before a closing brace: one statement a line.
    body = "".join(f"    {ln}\n" for ln in lines)
    return f"  {kind} {name} {{\n{body}  }}"


def tables_in(listing: str, prefix: str) -> list[str]:
    """Names of the `ip` tables starting with `prefix` in `nft list tables` output."""
    out = []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[1] == FAMILY and parts[2].startswith(prefix):
            out.append(parts[2])
    return out
