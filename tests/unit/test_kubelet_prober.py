"""Probes against real loopback servers: outcomes and the kubelet's messages."""
import asyncio

from operators.models.podspec import Container, Probe
from operators.providers.local.kubelet.prober import probe, resolve_port

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
        assert await probe(p, C, "127.0.0.1", no_exec) == (True, "")
        assert seen[0].startswith("GET /healthz HTTP/1.1\r\n") and "X-Probe: 1" in seen[0]
        assert "User-Agent: kube-probe/" in seen[0]
        server.close()
        server, port, _ = await http_server(503)
        p = Probe.model_validate({"httpGet": {"path": "/", "port": port}})
        assert await probe(p, C, "127.0.0.1", no_exec) == (False, "HTTP probe failed with statuscode: 503")
        server.close()
    asyncio.run(main())


def test_refused_connections_are_reported_like_go():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, "127.0.0.1", no_exec) == (True, "")
        server.close()
        await server.wait_closed()
        ok, msg = await probe(Probe.model_validate({"tcpSocket": {"port": port}}), C, "127.0.0.1", no_exec)
        assert not ok and msg == f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        ok, msg = await probe(Probe.model_validate({"httpGet": {"path": "/x", "port": port}}), C, "127.0.0.1",
                              no_exec)
        assert msg == f'Get "http://127.0.0.1:{port}/x": dial tcp 127.0.0.1:{port}: connect: connection refused'
    asyncio.run(main())


def test_exec_probe_output_is_the_message():
    async def fails(command, timeout):
        return 1, "cat: can't open '/tmp/healthy': No such file or directory\n"

    async def slow(command, timeout):
        raise asyncio.TimeoutError

    p = Probe.model_validate({"exec": {"command": ["cat", "/tmp/healthy"]}})
    assert asyncio.run(probe(p, C, None, fails)) == (False, "cat: can't open '/tmp/healthy': No such file or directory")
    assert asyncio.run(probe(p, C, None, slow)) == (False, "command 'cat /tmp/healthy' timed out")
