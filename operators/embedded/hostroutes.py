"""Tenant address ranges never leave this machine.

The host's default route leads off it, so a packet for a tenant address that no bridge
owns (a ClusterIP, which routes nowhere here; an address of the VPC pool with no VPC yet)
would go out to whatever network the host sits on. A `prohibit` route for each tenant
range answers such packets locally (EACCES / ICMP administratively prohibited); the VPC
bridges' own, more specific routes still win for the addresses that exist.
"""
from __future__ import annotations

import ipaddress
import subprocess


def reject_route_args(cidr: str) -> list[str]:
    net = ipaddress.ip_network(cidr, strict=True)
    family = "-6" if net.version == 6 else "-4"
    return ["ip", family, "route", "replace", "prohibit", str(net), "proto", "static"]


def reject_locally(cidrs: list[str]) -> None:
    """Idempotent; left in place on `sk8s down`: another installation may share the ranges,
    and a reject route for addresses nothing here serves is harmless."""
    for cidr in cidrs:
        proc = subprocess.run(reject_route_args(cidr), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot keep {cidr} on this machine: {proc.stderr.strip()}")
