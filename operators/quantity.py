"""Kubernetes resource quantities (cpu, memory) as numbers."""
from __future__ import annotations

import re
from decimal import Decimal

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


def parse(value: str | int | float) -> Decimal:
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _RE.match(value.strip())
    if not m:
        raise ValueError(f"invalid quantity {value!r}")
    number, exponent, suffix = m.groups()
    if exponent:
        return Decimal(number + exponent)
    return Decimal(number) * Decimal(_SUFFIX[suffix or ""])


def cpu_cores(value: str | int | float) -> float:
    return float(parse(value))


def memory_bytes(value: str | int | float) -> int:
    return int(parse(value))


def format_cpu(cores: float) -> str:
    millis = round(cores * 1000)
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(n: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)
