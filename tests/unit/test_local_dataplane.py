"""The local load balancer's proxy and the VPC resolver, on real loopback sockets."""
import asyncio
import ipaddress
import socket

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from operators.providers.local.dnsserver import DnsServer, ZoneTable
from operators.providers.local.loadbalancer import pick_address
from operators.providers.local.netns import bind_in
from operators.providers.local.proxy import BackendSet, Listener
from operators.providers.local.vpc import VpcLayout, pick_subnet


async def echo_server(tag: bytes):
    async def handle(reader, writer):
        data = await reader.read(1024)
        writer.write(tag + data)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def ask(port: int, payload: bytes = b"hi") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await reader.read(1024)
    writer.close()
    return data


async def test_tcp_proxy_round_robins_and_fails_over_from_a_dead_backend():
    s1, p1 = await echo_server(b"one:")
    s2, p2 = await echo_server(b"two:")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: connections are refused
    backends = BackendSet()
    backends.replace([("127.0.0.1", p1), ("127.0.0.1", dead_port), ("127.0.0.1", p2)])
    sock = bind_in(None, "127.0.0.1", 0)
    lst = Listener("TCP", sock, backends)
    await lst.start()
    port = sock.getsockname()[1]
    replies = [await ask(port) for _ in range(6)]
    assert set(replies) == {b"one:hi", b"two:hi"}  # every request served
    assert ("127.0.0.1", dead_port) in backends.unhealthy and lst.stats.failovers >= 1
    backends.replace([("127.0.0.1", p2)])  # an endpoint change
    assert {await ask(port) for _ in range(3)} == {b"two:hi"}
    backends.replace([])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.read() == b""  # no backend: the connection is dropped, not hung
    await lst.close()
    for s in (s1, s2):
        s.close()


async def test_client_ip_affinity_keeps_a_client_on_its_backend_until_it_times_out_or_goes():
    s1, p1 = await echo_server(b"one:")
    s2, p2 = await echo_server(b"two:")
    backends = BackendSet()
    backends.replace([("127.0.0.1", p1), ("127.0.0.1", p2)])
    backends.set_affinity(3600)
    sock = bind_in(None, "127.0.0.1", 0)
    lst = Listener("TCP", sock, backends)
    await lst.start()
    port = sock.getsockname()[1]
    replies = [await ask(port) for _ in range(6)]
    assert len(set(replies)) == 1  # one client address, one backend
    first = ("127.0.0.1", p1 if replies[0] == b"one:hi" else p2)
    backends.replace([t for t in backends.targets if t != first])  # its endpoint goes: another takes it
    assert len({await ask(port) for _ in range(3)}) == 1 and (await ask(port)) != replies[0]
    backends.replace([("127.0.0.1", p1), ("127.0.0.1", p2)])
    backends.set_affinity(None)  # sessionAffinity: None again: round robin
    assert {await ask(port) for _ in range(4)} == {b"one:hi", b"two:hi"}
    await lst.close()
    for s in (s1, s2):
        s.close()


def test_affinity_expires_and_is_renewed_by_each_connection(monkeypatch):
    import operators.providers.local.proxy as proxy
    now = [1000.0]
    monkeypatch.setattr(proxy.time, "monotonic", lambda: now[0])
    b = BackendSet()
    b.replace([("10.0.0.1", 80), ("10.0.0.2", 80)])
    b.set_affinity(10)
    b.chose("c", ("10.0.0.2", 80))
    now[0] += 9
    assert b.order("c")[0] == ("10.0.0.2", 80)
    b.chose("c", ("10.0.0.2", 80))  # renewed
    now[0] += 9
    assert all(b.order("c")[0] == ("10.0.0.2", 80) for _ in range(4))
    now[0] += 11  # expired: round robin again
    assert {b.order("c")[0] for _ in range(4)} == {("10.0.0.1", 80), ("10.0.0.2", 80)}
    b.unhealthy.add(("10.0.0.2", 80))
    b.chose("c", ("10.0.0.2", 80))
    assert b.order("c")[0] == ("10.0.0.1", 80)  # an unhealthy backend is not kept


async def test_udp_proxy_relays_both_ways():
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, data, addr):
            self.t.sendto(b"udp:" + data, addr)
    t, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    backends = BackendSet()
    backends.replace([t.get_extra_info("sockname")])
    sock = bind_in(None, "127.0.0.1", 0, socket.SOCK_DGRAM)
    lst = Listener("UDP", sock, backends)
    await lst.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2)
    client.sendto(b"ping", sock.getsockname())
    assert (await asyncio.to_thread(client.recvfrom, 100))[0] == b"udp:ping"
    client.close()
    await lst.close()
    t.close()


async def test_resolver_answers_records_nxdomain_nodata_and_refuses_other_zones():
    zones = ZoneTable()
    zones.load([("cluster.local", [
        {"rr": "web.default.svc", "type": "A", "values": ["10.112.1.1"], "ttl": 5},
        {"rr": "alias.default.svc", "type": "CNAME", "values": ["web.default.svc.cluster.local"]},
        {"rr": "_http._tcp.web.default.svc", "type": "SRV", "values": ["0 100 80 web.default.svc.cluster.local"]},
    ])])
    for _ in range(20):  # one port number free for both UDP and TCP
        udp = bind_in(None, "127.0.0.1", 0, socket.SOCK_DGRAM)
        try:
            tcp = bind_in(None, "127.0.0.1", udp.getsockname()[1])
            break
        except OSError:
            udp.close()
    server = DnsServer(zones, udp, tcp)
    await server.start()
    port = udp.getsockname()[1]

    async def q(name, qtype="A", over_tcp=False):
        raw = await asyncio.to_thread(DNSRecord.question(name, qtype).send, "127.0.0.1", port, over_tcp, 2)
        return DNSRecord.parse(raw)
    a = await q("web.default.svc.cluster.local")
    assert a.header.rcode == RCODE.NOERROR and [str(r.rdata) for r in a.rr] == ["10.112.1.1"] and a.header.aa
    assert [str(r.rdata) for r in (await q("WEB.default.svc.cluster.local", over_tcp=True)).rr] == ["10.112.1.1"]
    alias = await q("alias.default.svc.cluster.local")
    assert [QTYPE[r.rtype] for r in alias.rr] == ["CNAME", "A"]
    srv = await q("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert srv.rr[0].rdata.port == 80
    assert (await q("nope.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN
    empty = await q("svc.cluster.local")  # an empty non-terminal exists: NOERROR, no data
    assert empty.header.rcode == RCODE.NOERROR and not empty.rr
    assert (await q("example.org")).header.rcode == RCODE.REFUSED
    zones.load([])  # records removed
    assert (await q("web.default.svc.cluster.local")).header.rcode == RCODE.REFUSED
    await server.close()


def test_vpc_layout_splits_pods_and_services():
    layout = VpcLayout(ipaddress.ip_network("10.112.2.0/23"))
    assert str(layout.pod_range) == "10.112.2.0/24"
    assert layout.resolver == "10.112.3.254"
    addrs = layout.service_addresses()
    assert addrs[0] == "10.112.3.1" and layout.resolver not in addrs and "10.112.3.255" not in addrs


def test_subnet_and_address_picking():
    pool = ipaddress.ip_network("10.112.0.0/20")
    used = [ipaddress.ip_network("10.112.0.0/24"), ipaddress.ip_network("10.112.3.0/24")]
    assert str(pick_subnet(used, pool)) == "10.112.4.0/23"
    assert pick_address(["a", "b", "c"], {"a"}, None) == "b"
    assert pick_address(["a", "b", "c"], {"a"}, "c") == "c"  # the recorded address is kept
    assert pick_address(["a", "b", "c"], {"c"}, "c") == "a"  # unless another LB holds it
    with pytest.raises(Exception):
        pick_address(["a"], {"a"}, None)


def test_packet_cache_keeps_each_query_id_and_forgets_on_reload():
    zones = ZoneTable()
    zones.load([("cluster.local", [{"rr": "web.default.svc", "type": "A", "values": ["10.112.1.1"]}])])
    q1, q2 = DNSRecord.question("web.default.svc.cluster.local"), DNSRecord.question("web.default.svc.cluster.local")
    q1.header.id, q2.header.id = 1111, 2222
    r1, r2 = DNSRecord.parse(zones.respond(q1.pack())), DNSRecord.parse(zones.respond(q2.pack()))
    assert (r1.header.id, r2.header.id) == (1111, 2222) and str(r2.rr[0].rdata) == "10.112.1.1"
    zones.load([("cluster.local", [{"rr": "web.default.svc", "type": "A", "values": ["10.112.1.9"]}])])
    assert str(DNSRecord.parse(zones.respond(q1.pack())).rr[0].rdata) == "10.112.1.9"
    assert zones.respond(b"\x00garbage") is None


def test_vpc_isolation_rules_let_the_vpc_talk_to_itself_and_drop_the_rest_of_the_pool():
    from operators.providers.local.firewall import rules, tag_of
    tag = tag_of("home1", "0123456789abcdef")
    assert tag == "sk8s:home1:0123456789ab"
    own, rest = rules("10.112.2.0/23", "10.112.0.0/12", tag)
    assert own[:4] == ["-s", "10.112.2.0/23", "-d", "10.112.2.0/23"] and own[-1] == "ACCEPT"
    assert rest[:4] == ["-s", "10.112.2.0/23", "-d", "10.112.0.0/12"] and rest[-1] == "DROP"
    assert tag in own and tag in rest
    *_, admins = rules("10.112.2.0/23", "10.112.0.0/12", tag, protected=("10.89.0.0/24",))
    assert admins[:4] == ["-s", "10.112.2.0/23", "-d", "10.89.0.0/24"] and admins[-1] == "DROP"


def test_a_vpc_may_not_open_connections_to_the_host():
    from operators.providers.local.firewall import host_rules
    (rule,) = host_rules("10.112.2.0/23", "sk8s:h:v")
    assert rule[:2] == ["-s", "10.112.2.0/23"] and rule[-1] == "DROP"
    assert rule[rule.index("--ctstate") + 1] == "NEW"  # replies to the host's own connections pass
