"""A VPC's resolver: an authoritative DNS server for the private zones bound to the VPC.

The wire format is dnslib's; this module only holds the zone data and answers from it.
Names outside every bound zone get REFUSED: sandboxes here have no upstream resolver to
forward to (the cloud's VPC resolver would recurse).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SRV, TXT, A, DNSRecord

log = logging.getLogger(__name__)
PACKET_CACHE = 4096

_RDATA = {
    "A": lambda v: A(v),
    "AAAA": lambda v: AAAA(v),
    "CNAME": lambda v: CNAME(_fqdn(v)),
    "PTR": lambda v: PTR(_fqdn(v)),
    "TXT": lambda v: TXT(v),
}


def _fqdn(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _srv(value: str) -> SRV:
    priority, weight, port, target = value.split()
    return SRV(priority=int(priority), weight=int(weight), port=int(port), target=_fqdn(target))


def compile_zones(zones: list[tuple[str, list[dict]]]) -> tuple[dict[str, dict[str, tuple[list, int]]], list[str]]:
    """(zone name, records) pairs -> {fqdn: {type: (rdata list, ttl)}} and the zone apexes."""
    table: dict[str, dict[str, tuple[list, int]]] = {}
    apexes = []
    for zone_name, records in zones:
        apex = _fqdn(zone_name)
        apexes.append(apex)
        for r in records:
            name = apex if r["rr"] == "@" else _fqdn(f"{r['rr']}.{apex}")
            rtype = r.get("type", "A")
            make = _srv if rtype == "SRV" else _RDATA[rtype]
            rdata = []
            for v in r.get("values") or []:
                try:
                    rdata.append(make(v))
                except (ValueError, TypeError) as exc:
                    log.warning("zone %s: skipping bad %s value %r for %s: %s", zone_name, rtype, v, name, exc)
            table.setdefault(name, {})[rtype] = (rdata, int(r.get("ttl", 5)))
    return table, sorted(apexes, key=len, reverse=True)


class ZoneTable:
    def __init__(self) -> None:
        self.table: dict[str, dict[str, tuple[list, int]]] = {}
        self.apexes: list[str] = []
        self.names: set[str] = set()
        self.queries = 0
        # Answers by query bytes (all but the id): dnslib's parse and pack dominate the cost,
        # and the same few names are asked again and again (a packet cache, as PowerDNS has).
        self._packets: dict[bytes, bytes] = {}

    def respond(self, data: bytes) -> bytes | None:
        """The wire answer to a wire query; None for garbage."""
        data = bytes(data)
        cached = self._packets.get(data[2:])
        if cached is not None:
            self.queries += 1
            return data[:2] + cached
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises its own error types for garbage
            return None
        packed = bytes(self.answer(request).pack())
        if len(self._packets) < PACKET_CACHE:
            self._packets[data[2:]] = packed[2:]
        return packed

    def load(self, zones: list[tuple[str, list[dict]]]) -> None:
        self.table, self.apexes = compile_zones(zones)
        self._packets.clear()
        # Every name that exists, including empty non-terminals (`svc.cluster.local.`),
        # which answer NOERROR without data rather than NXDOMAIN.
        names = set(self.apexes)
        for name in self.table:
            labels = name.split(".")
            names.update(".".join(labels[i:]) for i in range(len(labels) - 1))
        self.names = names

    def _exists(self, name: str) -> bool:
        return name in self.names

    def answer(self, request: DNSRecord) -> DNSRecord:
        self.queries += 1
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        if not any(qname == a or qname.endswith("." + a) for a in self.apexes):
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        name = qname
        for _ in range(8):  # follow CNAMEs inside our zones
            entry = self.table.get(name) or {}
            if qtype in entry or (qtype == "ANY" and entry):
                for rtype, (rdata, ttl) in entry.items():
                    if qtype in (rtype, "ANY"):
                        for rd in rdata:
                            reply.add_answer(RR(name, getattr(QTYPE, rtype), rdata=rd, ttl=ttl))
                return reply
            if "CNAME" in entry and qtype != "CNAME":
                rdata, ttl = entry["CNAME"]
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=rdata[0], ttl=ttl))
                name = str(rdata[0].label).lower()
                continue
            break
        if name == qname and not self._exists(qname):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zones: ZoneTable) -> None:
        self.zones = zones
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        packed = self.zones.respond(data)
        if packed is None:
            return
        if len(packed) > 512:
            reply = DNSRecord.parse(data).reply()
            reply.header.tc = 1  # too big for UDP: the client retries over TCP
            packed = reply.pack()
        self.transport.sendto(packed, addr)


class DnsServer:
    """UDP and TCP port 53 on one address (sockets made by the caller, possibly in a VPC)."""

    def __init__(self, zones: ZoneTable, udp_sock: socket.socket, tcp_sock: socket.socket) -> None:
        self.zones = zones
        self.udp_sock, self.tcp_sock = udp_sock, tcp_sock
        self.netns: str | None = None
        self._udp = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.zones), sock=self.udp_sock)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=self.tcp_sock)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                packed = self.zones.respond(await reader.readexactly(size))
                if packed is None:
                    break
                writer.write(struct.pack("!H", len(packed)) + packed)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as exc:
            log.debug("dns tcp: %s", exc)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
        self.udp_sock.close()
        self.tcp_sock.close()
