"""Probes against real servers: outcomes and the kubelet's messages, and that a probe
reaches only the pod, from inside its own network namespace."""
import asyncio
import os
import shutil
import ssl
import subprocess
import uuid

import pytest

from operators.models.podspec import PROBE_HOSTS, Container, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction
from operators.providers.local import netns
from operators.providers.local.kubelet.prober import (LOOPBACK_HOSTS, PodNetwork, Refused, probe, request_headers,
                                                      request_path, resolve_port, target_address)

# The loopback servers of most tests run in this process's own namespace.
HERE = PodNetwork("127.0.0.1", "/proc/self/ns/net")

C = Container.model_validate({"name": "web", "image": "img", "ports": [{"name": "http", "containerPort": 8080}]})


async def no_exec(command, timeout):
    raise AssertionError("not an exec probe")


async def http_server(status: int):
    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request.decode())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()
    seen: list[str] = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_ports_by_number_or_name():
    assert resolve_port(80, C) == 80 and resolve_port("8080", C) == 8080 and resolve_port("http", C) == 8080
    assert resolve_port("metrics", C) is None


def test_http_get_success_and_status_failure():
    async def main():
        server, port, seen = await http_server(200)
        p = Probe.model_validate({"httpGet": {"path": "/healthz", "port": port,
                                              "httpHeaders": [{"name": "X-Probe", "value": "1"}]}})
        assert await probe(p, C, HERE, no_exec) == (True, "")
        assert seen[0].startswith("GET /healthz HTTP/1.1\r\n") and "X-Probe: 1" in seen[0]
        assert "User-Agent: kube-probe/1.37\r\n" in seen[0]  # the kubelet's, of the version sk8s runs
        server.close()
        server, port, _ = await http_server(503)
        p = Probe.model_validate({"httpGet": {"path": "/", "port": port}})
        assert await probe(p, C, HERE, no_exec) == (False, "HTTP probe failed with statuscode: 503")
        server.close()
    asyncio.run(main())


def test_refused_connections_are_reported_like_go():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, HERE, no_exec) == (True, "")
        server.close()
        await server.wait_closed()
        ok, msg = await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, HERE, no_exec)
        assert not ok and msg == f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        ok, msg = await probe(Probe.model_validate({"httpGet": {"path": "/x", "port": port}}), C, HERE,
                              no_exec)
        assert msg == f'Get "http://127.0.0.1:{port}/x": dial tcp 127.0.0.1:{port}: connect: connection refused'
    asyncio.run(main())


def test_exec_probe_output_is_the_message():
    async def fails(command, timeout):
        return 1, "cat: can't open '/tmp/healthy': No such file or directory\n"

    async def slow(command, timeout):
        raise asyncio.TimeoutError

    p = Probe.model_validate({"exec": {"command": ["cat", "/tmp/healthy"]}})
    assert asyncio.run(probe(p, C, PodNetwork(None, None), fails)) == (False, "cat: can't open '/tmp/healthy': No such file or directory")
    assert asyncio.run(probe(p, C, PodNetwork(None, None), slow)) == (False, "command 'cat /tmp/healthy' timed out")


# --- only the pod: hosts, request lines ----------------------------------------------

def unchecked(kind: str, **action) -> Probe:
    """A probe as a hostile writer could hand it over, past the schema (which refuses it):
    the prober must refuse it by itself."""
    headers = [HTTPHeader.model_construct(name=n, value=v) for n, v in action.pop("headers", [])]
    if kind == "httpGet":
        return Probe.model_construct(httpGet=HTTPGetAction.model_construct(
            **{"path": None, "host": None, "scheme": None, "httpHeaders": headers or None, **action}))
    return Probe.model_construct(tcpSocket=TCPSocketAction.model_construct(**{"host": None, **action}))


def test_the_schema_and_the_prober_allow_the_same_hosts():
    assert set(PROBE_HOSTS) == set(LOOPBACK_HOSTS) | {""}

@pytest.mark.parametrize("host", [None, "", "10.88.0.7"])
def test_the_pod_ip_is_the_default_target(host):
    assert target_address(host, "10.88.0.7") == "10.88.0.7"


@pytest.mark.parametrize("host,address", [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1")])
def test_loopback_is_the_pods_own(host, address):
    assert target_address(host, "10.88.0.7") == address


@pytest.mark.parametrize("host", ["10.88.0.8", "169.254.169.254", "127.0.0.2", "0.0.0.0", "etcd.example",
                                  "LOCALHOST", "localhost.", "::ffff:127.0.0.1", "10.88.0.7 "])
def test_any_other_host_is_refused(host):
    with pytest.raises(Refused, match="is not the pod"):
        target_address(host, "10.88.0.7")


def test_no_address_yet():
    with pytest.raises(Refused, match="no IP address yet"):
        target_address(None, None)


@pytest.mark.parametrize("path,target", [(None, "/"), ("healthz", "/healthz"), ("/a b?x=1&y=%41", "/a%20b?x=1&y=%41"),
                                         ("/x#frag", "/x"), ("/é", "/%C3%A9"), ('/"<>', "/%22%3C%3E")])
def test_request_path_cannot_end_the_request_line(path, target):
    assert request_path(path) == target


@pytest.mark.parametrize("path", ["/a\r\nX-Injected: 1", "/a\nb", "/\x00", "/\x7f", "/\x1b[31m"])
def test_control_characters_in_the_path_are_refused(path):
    with pytest.raises(Refused, match="invalid control character"):
        request_path(path)


@pytest.mark.parametrize("name,value,error", [
    ("X-A", "1\r\n\r\nGET /smuggled HTTP/1.1", "value"), ("X-A", "1\nX-B: 2", "value"),
    ("X-A", "a\x00b", "value"), ("X-A", "a\rb", "value"), ("X-A", "\x7f", "value"),
    ("X A", "1", "name"), ("X-A:", "1", "name"), ("X-A\r\nX-B", "1", "name"), ("", "1", "name")])
def test_header_lines_cannot_be_added(name, value, error):
    with pytest.raises(Refused, match=f"invalid header field {error}"):
        request_headers([(name, value)])


def test_tabs_and_text_are_fine_in_values():
    assert request_headers([("X-A", "a\tb c é")]) == [("X-A", "a\tb c é")]


def test_smuggling_headers_never_reach_the_server():
    async def main():
        server, port, seen = await http_server(200)
        smuggle = "1\r\nContent-Length: 0\r\n\r\nPUT /v3/kv/put HTTP/1.1\r\nX: y"
        for action in ({"headers": [("X-A", smuggle)]}, {"path": "/\r\n\r\nPUT /v3/kv/put HTTP/1.1"},
                       {"headers": [("X-A: 1\r\nX-B", "2")]}):
            ok, msg = await probe(unchecked("httpGet", port=port, **action), C, HERE, no_exec)
            assert not ok and "net/" in msg and "\r" not in msg and "\n" not in msg, msg
        ok, _ = await probe(Probe.model_validate({"httpGet": {"port": port, "path": "/ok"}}), C, HERE, no_exec)
        assert ok and len(seen) == 1 and seen[0].startswith("GET /ok HTTP/1.1\r\n")  # only the good one arrived
        server.close()
    asyncio.run(main())


def test_a_probe_to_another_host_is_never_sent():
    async def main():
        server, port, seen = await http_server(200)  # on 127.0.0.1 of this namespace
        for kind in ("httpGet", "tcpSocket"):
            for host in ("127.0.0.2", "10.99.0.1", "localhost.localdomain"):
                p = unchecked(kind, port=port, host=host)
                ok, msg = await probe(p, C, PodNetwork("10.88.0.7", "/proc/self/ns/net"), no_exec)
                assert not ok and "is not the pod" in msg
        assert seen == []
        server.close()
    asyncio.run(main())


# --- inside the pod's network namespace ------------------------------------------------

@pytest.fixture
def pod_netns():
    """A network namespace of our own standing in for a pod's: loopback up and an address
    that the host does not have."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    name = f"sk8s-probe-{uuid.uuid4().hex[:8]}"
    ip = "10.254.77.2"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # On lo: an interface that needs no kernel module (dummy, veth may be missing).
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", f"{ip}/32", "dev", "lo"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield PodNetwork(ip, f"/run/netns/{name}")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert not os.path.exists(f"/run/netns/{name}")


async def _server_in(path: str | None, host: str, port: int, status: int, seen: list):
    async def handle(reader, writer):
        seen.append((await reader.readuntil(b"\r\n\r\n")).decode())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()
    sock = netns.bind_in(path, host, port)
    return await asyncio.start_server(handle, sock=sock)


def test_probes_reach_the_pods_listener_not_the_hosts(pod_netns):
    async def main():
        in_pod, on_host = [], []
        # The host listens on every address with the port the pod uses: a probe run from
        # the host would get its 500 (or, for the pod IP, no route at all).
        host_server = await _server_in(None, "0.0.0.0", 0, 500, on_host)
        port = host_server.sockets[0].getsockname()[1]
        pod_server = await _server_in(pod_netns.netns, "0.0.0.0", port, 200, in_pod)
        for host in (None, "127.0.0.1", "localhost"):
            p = Probe.model_validate({"httpGet": {"path": "/healthz", "port": port, "host": host}})
            assert await probe(p, C, pod_netns, no_exec) == (True, "")
        assert await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, pod_netns, no_exec) == (True, "")
        assert len(in_pod) == 3 and on_host == []
        assert f"Host: {pod_netns.ip}:{port}\r\n" in in_pod[0]
        # The pod's listener gone, the host's still there: the probe fails as the pod's would.
        pod_server.close()
        await pod_server.wait_closed()
        ok, msg = await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, pod_netns, no_exec)
        assert not ok and msg == f"dial tcp {pod_netns.ip}:{port}: connect: connection refused"
        ok, msg = await probe(Probe.model_validate({"httpGet": {"port": port, "host": "127.0.0.1"}}), C, pod_netns,
                              no_exec)
        assert not ok and "connection refused" in msg
        assert on_host == []
        host_server.close()
    asyncio.run(main())


def test_a_namespace_that_is_gone_fails_the_probe(pod_netns):
    gone = PodNetwork(pod_netns.ip, pod_netns.netns + "-gone")
    ok, msg = asyncio.run(probe(Probe.model_validate({"tcpSocket": {"port": 80}}), C, gone, no_exec))
    assert not ok and "No such file" in msg
    ok, msg = asyncio.run(probe(Probe.model_validate({"tcpSocket": {"port": 80}}), C, PodNetwork("10.1.1.1", None),
                                no_exec))
    assert (ok, msg) == (False, "the pod has no network namespace yet")


@pytest.mark.parametrize("action", [
    {"httpGet": {"port": 80, "host": "10.88.0.8"}}, {"tcpSocket": {"port": 80, "host": "etcd.example"}},
    {"tcpSocket": {"port": 80, "host": "127.0.0.2"}}, {"httpGet": {"port": 80, "path": "/a\r\nX: 1"}},
    {"httpGet": {"port": 80, "httpHeaders": [{"name": "X-A", "value": "1\r\nX-B: 2"}]}},
    {"httpGet": {"port": 80, "httpHeaders": [{"name": "X-A\nX-B", "value": "1"}]}}])
def test_the_sandboxpod_schema_refuses_what_would_leave_the_pod(action):
    with pytest.raises(ValueError):
        Probe.model_validate(action)


def test_https_probes_run_in_the_namespace_too(pod_netns, tmp_path):
    from operators.embedded import pki
    ca = pki.make_ca("probe-ca")
    pki.write(pki.issue(ca, "pod", server=True, ips=[pod_netns.ip]), tmp_path, "pod")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "pod.crt"), str(tmp_path / "pod.key"))

    async def main():
        seen: list[str] = []

        async def handle(reader, writer):
            seen.append((await reader.readuntil(b"\r\n\r\n")).decode())
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, sock=netns.bind_in(pod_netns.netns, pod_netns.ip, 0), ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        p = Probe.model_validate({"httpGet": {"path": "/tls", "port": port, "scheme": "HTTPS"}})
        assert await probe(p, C, pod_netns, no_exec) == (True, "")  # certificates are not verified, as upstream
        assert seen and seen[0].startswith("GET /tls HTTP/1.1\r\n")
        server.close()
    asyncio.run(main())


def test_the_worker_probes_from_the_pods_namespace_and_reads_it_again_once_gone(tmp_path):
    from operators.models.podspec import PodSpec
    from operators.providers.sandbox import SandboxRef
    from operators.providers.local.kubelet.worker import PodWorker

    first, second = tmp_path / "netns-1", tmp_path / "netns-2"
    first.touch()
    second.touch()

    class Runtime:  # the two runtime calls the worker makes for a probe's target
        asked = 0

        async def pod_netns(self, ref):
            self.asked += 1
            return str(first if self.asked == 1 else second)

        async def pod_ip(self, ref):
            return "10.88.0.7"

    sandbox = Runtime()
    spec = PodSpec.model_validate({"containers": [{"name": "app", "image": "img"}]})
    w = PodWorker(sandbox, SandboxRef("ns", "web", "u-1"), spec, network="n", labels={}, dns=[], state_file=None)

    async def main():
        assert await w.probes.pod_network() == PodNetwork("10.88.0.7", str(first))
        assert await w.probes.pod_network() == PodNetwork("10.88.0.7", str(first)) and sandbox.asked == 1
        first.unlink()  # the infra container was replaced
        assert await w.probes.pod_network() == PodNetwork("10.88.0.7", str(second)) and sandbox.asked == 2
    asyncio.run(main())


# --- gRPC: grpc.health.v1.Health/Check over HTTP/2 against a real h2 server -------------

async def grpc_server(answer):
    """An HTTP/2 server answering each health check with `answer(service)`: a serving
    status, or (grpc-status, message) for an error."""
    import h2.config
    import h2.connection
    import h2.events
    from operators.providers.local.kubelet import grpcprobe
    seen: list[dict] = []

    async def handle(reader, writer):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        body = b""
        while chunk := await reader.read(65536):
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.RequestReceived):
                    seen.append(dict(ev.headers))
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                elif isinstance(ev, h2.events.StreamEnded):
                    service = body[7:].decode() if len(body) > 5 else ""
                    result = answer(service)
                    seen[-1]["service"] = service
                    if isinstance(result, tuple):  # trailers-only error
                        conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc"),
                                                         ("grpc-status", str(result[0])),
                                                         ("grpc-message", result[1])], end_stream=True)
                    else:
                        msg = b"\x08" + bytes([result])
                        conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                        conn.send_data(ev.stream_id, b"\x00" + len(msg).to_bytes(4, "big") + msg)
                        conn.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()
    assert grpcprobe.PATH
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_grpc_health_probe_outcomes_and_the_kubelets_messages():
    async def main():
        server, port, seen = await grpc_server(lambda svc: {"": 1, "db": 2}.get(svc, (12, "unknown%20service")))
        serving = Probe.model_validate({"grpc": {"port": port}})
        assert await probe(serving, C, HERE, no_exec) == (True, "")
        assert seen[0][":path"] == "/grpc.health.v1.Health/Check" and seen[0]["content-type"] == "application/grpc"
        assert seen[0]["user-agent"] == "kube-probe/1.37" and seen[0]["service"] == ""
        not_serving = Probe.model_validate({"grpc": {"port": port, "service": "db"}})
        assert await probe(not_serving, C, HERE, no_exec) == (False, 'service unhealthy (responded with "NOT_SERVING")')
        assert seen[1]["service"] == "db"
        other = Probe.model_validate({"grpc": {"port": port, "service": "cache"}})
        assert await probe(other, C, HERE, no_exec) == (
            False, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
                   "unknown service")
        server.close()
        closed = Probe.model_validate({"grpc": {"port": port, "timeoutSeconds": 1}})
        ok, message = await probe(closed, C, HERE, no_exec)
        assert not ok and message == f'error: failed to connect service at "127.0.0.1:{port}": ' \
                                     f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    asyncio.run(main())


def test_grpc_probe_against_a_server_that_is_not_grpc_fails_within_its_timeout():
    async def main():
        server, port, _ = await http_server(200)  # HTTP/1.1 answers the HTTP/2 preface
        p = Probe.model_validate({"grpc": {"port": port}, "timeoutSeconds": 1})
        ok, message = await asyncio.wait_for(probe(p, C, HERE, no_exec), 5)
        assert not ok and message.startswith(("error: health rpc probe failed:", "timeout: health rpc"))
        server.close()
    asyncio.run(main())


def test_grpc_messages_are_framed_and_parsed_as_the_health_protocol_says():
    from operators.providers.local.kubelet.grpcprobe import request_message, response_status
    assert request_message("") == b"\x00\x00\x00\x00\x00"
    assert request_message("db") == b"\x00\x00\x00\x00\x04\x0a\x02db"
    assert response_status(b"\x00\x00\x00\x00\x02\x08\x01") == 1
    assert response_status(b"\x00\x00\x00\x00\x00") == 0  # the default: UNKNOWN
    for bad in (b"", b"\x01\x00\x00\x00\x02\x08\x01", b"\x00\x00\x00\x00\x05\x08\x01", b"\x00\x00\x00\x00\x01\x08"):
        with pytest.raises(ValueError):
            response_status(bad)
