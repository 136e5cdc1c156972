"""The kernel rule that holds a sleeping tenant's endpoint: pure nft builders.

A sleeping tenant's kube-apiserver is not running, yet its endpoint (127.0.0.1:PORT, in
every kubeconfig the tenant has) must answer. One table DNATs new connections to the
ports in the set `sleeping` to the operator's wake listener (wake.py), which starts the
plane and then relays the connection. An awake tenant's port is not in the set: its
clients reach its apiserver directly, with nothing in between.

The wake listener's own connections to a waking apiserver (its readiness probe and the
relays) carry MARK and pass the rule: they must reach the apiserver, not the listener.
Locally made connections only (the output hook): the endpoint is on loopback.
"""
from __future__ import annotations

from ..config import home_id
from ..providers.local import lbrules

MARK = 0x736B  # "sk"


def table() -> str:
    """This installation's table (homes on one machine each have their own)."""
    return lbrules.table_name("sk8s-wake-", home_id())


def _port(value: int) -> int:
    value = int(value)
    if not 0 < value < 65536:
        raise ValueError(f"not a port: {value}")
    return value


def table_script(wake_port: int, sleeping: list[int]) -> str:
    """The whole table, replacing any earlier one (an earlier listener's port)."""
    ports = ", ".join(str(_port(p)) for p in sorted(set(sleeping)))
    elements = f"    elements = {{ {ports} }}\n" if ports else ""
    return (f"{lbrules.delete(table())}table {lbrules.FAMILY} {table()} {{\n"
            f"  set sleeping {{\n    type inet_service\n{elements}  }}\n"
            "  chain output {\n"
            "    type nat hook output priority -100; policy accept;\n"
            f"    meta mark != {MARK:#x} ip daddr 127.0.0.1 tcp dport @sleeping dnat to 127.0.0.1:{_port(wake_port)}\n"
            "  }\n}\n")


def hold(port: int) -> str:
    return f"add element {lbrules.FAMILY} {table()} sleeping {{ {_port(port)} }}\n"


def release(port: int) -> str:
    # `add` first: deleting an element that is not there would fail the transaction.
    return hold(port) + f"delete element {lbrules.FAMILY} {table()} sleeping {{ {_port(port)} }}\n"


def drop() -> str:
    return lbrules.delete(table())
