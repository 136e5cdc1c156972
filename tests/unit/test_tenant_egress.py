"""The tenant apiserver's egress: where its proxy lets it connect, and the selector config."""
import asyncio
import ipaddress
from pathlib import Path

import pytest
import yaml

from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import egress
from operators.virtualnode.egress.policy import EgressPolicy, decide, parse_authority, reason_phrase
from operators.virtualnode.egress.proxy import EgressProxy, resolve
from operators.virtualnode.egress.ranges import VpcPolicy

VPC = ipaddress.ip_network("10.89.4.0/23")
KUBELET = ("127.0.0.1", 21001)
POLICY = EgressPolicy.for_vpc(KUBELET, VPC, "10.89.4.1")


@pytest.mark.parametrize("address", ["10.89.4.7", "10.89.5.20", "10.89.5.254"])  # pods, services, resolver
def test_the_tenants_own_vpc_is_reachable(address):
    assert decide(address, 8443, POLICY).allowed


def test_only_its_own_kubelet_port_on_loopback():
    assert decide("127.0.0.1", 21001, POLICY).allowed
    for port in (21000, 2379, 6443, 443):  # its apiserver, etcd, the meta apiserver, anything
        d = decide("127.0.0.1", port, POLICY)
        assert not d.allowed and "loopback" in d.reason


@pytest.mark.parametrize("address,why", [
    ("127.0.0.2", "loopback"), ("127.255.255.254", "loopback"), ("0.0.0.0", "unspecified"),
    ("10.89.4.1", "this host's own address"), ("10.89.4.0", "this host's own address"),
    ("10.89.5.255", "this host's own address"),
    ("10.89.6.7", "outside this cluster's VPC 10.89.4.0/23"), ("10.89.2.9", "outside"),  # other VPCs
    ("192.168.1.1", "outside"), ("8.8.8.8", "outside"), ("169.254.169.254", "outside"),
    ("::1", "IPv6"), ("fe80::1", "IPv6"), ("::", "IPv6"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.89.6.7", "outside"),
])
def test_everything_else_is_refused_with_a_reason(address, why):
    d = decide(address, 443, POLICY)
    assert not d.allowed and why in d.reason


def test_a_mapped_address_of_its_own_vpc_is_its_vpc():
    assert decide("::ffff:10.89.4.7", 443, POLICY).allowed


def test_without_a_vpc_only_the_kubelet():
    p = EgressPolicy.for_vpc(KUBELET, None)
    assert decide("127.0.0.1", 21001, p).allowed
    d = decide("10.89.4.7", 443, p)
    assert not d.allowed and "no VPC yet" in d.reason


def test_the_gateway_defaults_to_the_first_address():
    p = EgressPolicy.for_vpc(KUBELET, VPC)
    assert not decide("10.89.4.1", 22, p).allowed and decide("10.89.4.2", 22, p).allowed


@pytest.mark.parametrize("authority,expected", [
    ("10.89.4.7:443", ("10.89.4.7", 443)), ("[::1]:443", ("::1", 443)),
    ("webhook.example.com:8443", ("webhook.example.com", 8443)),
])
def test_connect_targets_parse(authority, expected):
    assert parse_authority(authority) == expected


@pytest.mark.parametrize("authority", ["10.89.4.7", "::1:443", "[::1]443", "a:0", "a:65536", "a:-1", ":443",
                                       "a b:443", "user@host:443", "a\x00b:443", "a/b:443"])
def test_bad_connect_targets_are_refused(authority):
    with pytest.raises(ValueError):
        parse_authority(authority)


def run(coro):
    return asyncio.run(coro)


def test_names_are_judged_by_what_they_resolve_to():
    async def resolver(host, port):
        return {"localhost": ["127.0.0.1"], "odd": ["127.0.0.1"], "webhook.team": ["10.89.4.9"],
                "mixed": ["10.89.6.1", "10.89.4.9"], "other": ["10.89.6.1"]}[host]
    assert run(resolve("webhook.team", 443, POLICY, resolver)) [0] == "10.89.4.9"
    assert run(resolve("mixed", 443, POLICY, resolver))[0] == "10.89.4.9"  # only the allowed one is dialled
    for name in ("localhost", "odd", "other"):
        address, d = run(resolve(name, 443, POLICY, resolver))
        assert address is None and d.reason.startswith(f"{name} -> ")


def test_odd_spellings_of_loopback_go_through_the_real_resolver():
    for host in ("127.1", "0x7f000001", "2130706433", "0", "localhost"):
        address, d = run(resolve(host, 21000, POLICY, _system_resolver))
        assert address is None, host


async def _system_resolver(host, port):
    from operators.virtualnode.egress.proxy import host_resolver
    return await host_resolver(host, port)


def test_an_unresolvable_name_is_refused():
    async def resolver(host, port):
        raise OSError("Name or service not known")
    address, d = run(resolve("nowhere.invalid", 443, POLICY, resolver))
    assert address is None and "does not resolve" in d.reason


def test_reason_phrases_cannot_break_the_status_line():
    assert reason_phrase("a\r\nX-Evil: 1\x00é") == "a??X-Evil: 1??"
    assert len(reason_phrase("x" * 1000)) == 200


def test_vpc_policy_asks_again_soon_while_missing_and_rarely_once_found():
    answers = [None, (VPC, "10.89.4.1")]
    calls = []
    now = [0.0]

    async def find(uid):
        calls.append(uid)
        return answers[min(len(calls) - 1, 1)]

    source = VpcPolicy(find, "uid-1", KUBELET, clock=lambda: now[0])
    assert run(source()).networks == ()
    now[0] = 1.0
    run(source())
    assert len(calls) == 1  # still within the 2 s of a missing VPC
    now[0] = 3.0
    assert run(source()).networks == (VPC,)
    now[0] = 30.0
    run(source())
    assert calls == ["uid-1", "uid-1"]


async def _connect(sock: str, target: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_unix_connection(sock)
    w.write(f"CONNECT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await w.drain()
    return await r.readuntil(b"\r\n\r\n"), r, w


def test_the_proxy_tunnels_to_the_kubelet_and_refuses_with_403(tmp_path):
    async def scenario():
        async def echo(r, w):
            w.write(await r.read(5))
            await w.drain()
            w.close()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def policy():
            return EgressPolicy.for_vpc(("127.0.0.1", port), VPC)
        proxy = EgressProxy(str(tmp_path / "egress.sock"), policy)
        await proxy.start()
        try:
            head, r, w = await _connect(proxy.path, f"127.0.0.1:{port}")
            assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
            w.write(b"hello")
            assert await r.read(5) == b"hello"
            w.close()
            head, _, w = await _connect(proxy.path, f"127.0.0.1:{port + 1}")
            assert head.startswith(b"HTTP/1.1 403 127.0.0.1 is this host (loopback")
            w.close()
            head, _, w = await _connect(proxy.path, "[::1]:443")
            assert head.startswith(b"HTTP/1.1 403 ::1 is IPv6")
            w.close()
            r, w = await asyncio.open_unix_connection(proxy.path)
            w.write(b"GET http://10.89.4.7/ HTTP/1.1\r\n\r\n")
            assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
            w.close()
            assert (tmp_path / "egress.sock").stat().st_mode & 0o077 == 0
        finally:
            await proxy.stop()
            server.close()
    run(scenario())


def test_the_egress_selector_sends_cluster_and_controlplane_to_the_plane_socket(tmp_path):
    path = egress.write_egress_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "apiserver.k8s.io/v1beta1" and doc["kind"] == "EgressSelectorConfiguration"
    assert [s["name"] for s in doc["egressSelections"]] == ["cluster", "controlplane"]
    for s in doc["egressSelections"]:
        assert s["connection"] == {"proxyProtocol": "HTTPConnect",
                                   "transport": {"uds": {"udsName": str(tmp_path / "egress.sock")}}}
    assert "&" not in path.read_text()  # no YAML anchors


def test_a_socket_path_too_long_for_unix_sockets_is_refused():
    with pytest.raises(ValueError, match="longer than a Unix socket path"):
        egress.egress_selector_config(Path("/" + "d" * 120) / "egress.sock")


T = cp.Tenant(directory=Path("/x/p1"), ports=cp.TenantPorts(21000, 21001), etcd_url="https://127.0.0.1:2379",
              etcd_prefix="/sk8s/tenants/p1", name="c1", namespace="team", uid="u-1", sandbox_namespace="t")


def test_the_tenant_apiserver_routes_to_endpoints_through_its_egress_proxy():
    args = cp.apiserver_args(Path("/bin"), T)
    assert {"--enable-aggregator-routing=true", "--egress-selector-config-file=/x/p1/egress-selector.yaml",
            "--kubelet-preferred-address-types=InternalIP"} <= set(args)
    vnode = cp.virtual_node_args(T, Path("/meta.kubeconfig"))
    assert {"--egress-socket=/x/p1/egress.sock", "--address=127.0.0.1", "--port=21001"} <= set(vnode)


def test_the_tenant_controller_manager_runs_the_node_free_controllers():
    args = cp.controller_manager_args(Path("/bin"), T)
    controllers = set(next(a for a in args if a.startswith("--controllers=")).split("=", 1)[1].split(","))
    assert {"persistentvolumeclaim-protection-controller", "persistentvolume-protection-controller",
            "volumeattributesclass-protection-controller", "ephemeral-volume-controller",
            "endpointslice-mirroring-controller", "disruption-controller", "ttl-after-finished-controller",
            "root-ca-certificate-publisher-controller", "validatingadmissionpolicy-status-controller"} <= controllers
    assert not controllers & {"node-lifecycle-controller", "taint-eviction-controller", "node-ipam-controller",
                              "certificatesigningrequest-signing-controller"}


def test_refusals_are_logged_once_a_period_per_destination(caplog):
    import logging

    from operators.virtualnode.egress.proxy import RefusalLog
    now = [0.0]
    refusals = RefusalLog(every=60, keys=2, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="operators.virtualnode.egress.proxy"):
        for _ in range(1000):  # a tenant's webhook hammering a refused address
            refusals.refused("127.0.0.1", 2379, "127.0.0.1 is this host")
        now[0] = 61
        refusals.refused("127.0.0.1", 2379, "127.0.0.1 is this host")
        refusals.refused("10.0.0.1\nFAKE LINE", 443, "outside")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["egress refused: '127.0.0.1' port 2379: 127.0.0.1 is this host",
                     "egress refused: '127.0.0.1' port 2379: 127.0.0.1 is this host (999 more refusals not logged)",
                     "egress refused: '10.0.0.1\\nFAKE LINE' port 443: outside"]
    for i in range(10):  # remembered destinations stay bounded
        refusals.refused(f"10.0.0.{i}", 443, "outside")
    assert len(refusals._seen) <= 2
