"""The metapod provider's streams against a local HTTP server speaking the apiserver's Pod
subresource protocols (pods/log streamed; pods/exec and pods/attach WebSockets in the
channel framing with the error channel's Status; pods/portforward's v4 channels opened by
the port): what is sent (each argument its own parameter, the caller's bearer token), what
comes back, exit codes and refusals. The real apiserver and kubelet: tests/kind."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import aiohttp
import aiohttp.web
import pytest

from operators.kubeclient.client import Credentials, KubeClient
from operators.providers.aliyun import eci_exec_frames as ef
from operators.providers.errors import ProviderError
from operators.providers.logopts import ContainerLogOpts
from operators.providers.metapod.streams import MetaPodStreams, log_params, port_header, stdio_params
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("sk8s-t-demo", "web", "u-1")
POD = f"/api/v1/namespaces/{REF.namespace}/pods/{REF.instance_name}"
HOSTILE = ["sh", "-c", "echo $(id); rm -rf / #", "--", "ünï\ncode", ""]


class FakeApiserver:
    def __init__(self):
        self.seen: list[tuple[str, list[tuple[str, str]], str | None]] = []
        app = aiohttp.web.Application()
        app.router.add_get(POD + "/log", self.log)
        app.router.add_get(POD + "/exec", self.exec)
        app.router.add_get(POD + "/attach", self.exec)
        app.router.add_get(POD + "/portforward", self.portforward)
        self.app = app

    def _record(self, request) -> None:
        self.seen.append((request.path, list(request.query.items()), request.headers.get("Authorization")))

    async def log(self, request):
        self._record(request)
        if request.query.get("container") == "missing":
            return aiohttp.web.json_response({"kind": "Status", "message": 'container "missing" is not valid'},
                                             status=400)
        resp = aiohttp.web.StreamResponse()
        await resp.prepare(request)
        for line in (b"one\n", b"two\n"):
            await resp.write(line)
            await asyncio.sleep(0.01)
        return resp

    async def exec(self, request):
        self._record(request)
        ws = aiohttp.web.WebSocketResponse(protocols=(ef.V5, ef.V4))
        await ws.prepare(request)
        got = b""
        async for msg in ws:
            frame = ef.decode(msg.data)
            if frame.close:
                break
            if frame.channel == ef.STDIN:
                got += frame.data
            if frame.channel == ef.RESIZE:
                await ws.send_bytes(ef.encode(ef.STDOUT, b"resized " + frame.data))
        await ws.send_bytes(ef.encode(ef.STDOUT, got.upper()))
        await ws.send_bytes(ef.encode(ef.STDERR, b"warn"))
        await ws.send_bytes(ef.encode(ef.ERROR, ef.exit_status(3)))
        await ws.close()
        return ws

    async def portforward(self, request):
        self._record(request)
        ws = aiohttp.web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        port = int(request.query["ports"])
        await ws.send_bytes(bytes([0]) + port_header(port))
        await ws.send_bytes(bytes([1]) + port_header(port))
        async for msg in ws:
            frame = ef.decode(msg.data)
            if frame.channel == 0:
                await ws.send_bytes(bytes([0]) + b"echo:" + frame.data)
        return ws


@contextlib.asynccontextmanager
async def serving():
    """On the test's own loop (the suite's async fixtures run on the session's)."""
    server = FakeApiserver()
    runner = aiohttp.web.AppRunner(server.app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client = KubeClient(Credentials(f"http://127.0.0.1:{port}", False, {"Authorization": "Bearer vn-token"}), "meta")
    yield MetaPodStreams(lambda: client), server
    await client.close()
    await runner.cleanup()


def test_every_log_option_is_the_apis_own_parameter():
    since = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert log_params("app", ContainerLogOpts(follow=True, tail=0, previous=True, timestamps=True,
                                              since_time=since, limit_bytes=10)) == {
        "container": "app", "follow": "true", "previous": "true", "timestamps": "true", "tailLines": "0",
        "limitBytes": "10", "sinceTime": "2026-11-30T19:00:00Z"}
    assert log_params("app", ContainerLogOpts(since_seconds=30)) == {"container": "app", "sinceSeconds": "30"}


def test_exec_arguments_are_parameters_one_each():
    assert stdio_params("app", stdin=True, tty=True, command=HOSTILE) == [
        ("container", "app"), ("stdout", "true"), ("stderr", "false"), ("stdin", "true"), ("tty", "true"),
        *[("command", a) for a in HOSTILE]]


async def test_logs_stream_with_the_callers_credentials():
    async with serving() as (s, server):
        out = b"".join([c async for c in s.logs(REF, "app", ContainerLogOpts(follow=True, tail=5))])
        assert out == b"one\ntwo\n"
        path, query, auth = server.seen[-1]
        assert path == POD + "/log" and dict(query) == {"container": "app", "follow": "true", "tailLines": "5"}
        assert auth == "Bearer vn-token"
        limited = b"".join([c async for c in s.logs(REF, "app", ContainerLogOpts(limit_bytes=5))])
        assert limited == b"one\nt"


async def test_a_log_the_apiserver_refuses_says_why():
    async with serving() as (s, _):
        with pytest.raises(ProviderError) as info:
            [c async for c in s.logs(REF, "missing", ContainerLogOpts())]
        assert 'container "missing" is not valid' in str(info.value) and info.value.reason == "BadRequest"


async def drain(read) -> bytes:
    chunks = []
    while data := await asyncio.wait_for(read(), 5):
        chunks.append(data)
    return b"".join(chunks)


async def test_exec_streams_stdio_resize_end_of_input_and_the_exit_code():
    async with serving() as (s, server):
        session = await s.open_exec_session(REF, "app", HOSTILE, stdin=True, tty=False)
        await session.write_stdin(b"hello ")
        await session.write_stdin(b"world")
        await session.close_stdin()  # v5: the server sees the end of input and answers
        assert await drain(session.read_stdout) == b"HELLO WORLD"
        assert await drain(session.read_stderr) == b"warn"
        assert await asyncio.wait_for(session.wait(), 5) == 3
        await session.close()
        path, query, _ = server.seen[-1]
        assert path == POD + "/exec" and [v for k, v in query if k == "command"] == HOSTILE


async def test_attach_with_a_tty_resizes():
    async with serving() as (s, server):
        session = await s.open_attach_session(REF, "app", stdin=True, tty=True)
        session.resize(80, 24)
        await asyncio.sleep(0.1)
        await session.close_stdin()
        assert await drain(session.read_stdout) == b'resized {"Width": 80, "Height": 24}'
        assert await asyncio.wait_for(session.wait(), 5) == 3
        await session.close()
        path, query, _ = server.seen[-1]
        assert path == POD + "/attach" and not [k for k, _ in query if k == "command"] and ("tty", "true") in query


async def test_port_forward_bridges_a_connection_past_the_port_headers():
    async with serving() as (s, server):
        reader, writer = await s.open_port_stream(REF, 8080)
        writer.write(b"ping")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(9), 5) == b"echo:ping"
        writer.close()
        assert server.seen[-1][:2] == (POD + "/portforward", [("ports", "8080")])


async def test_a_refused_upgrade_is_a_provider_error():
    async with serving() as (s, _):
        with pytest.raises(ProviderError) as info:
            await s.open_exec_session(SandboxRef("other", "x", "u-2"), "app", ["true"], stdin=False, tty=False)
        assert info.value.reason == "NotFound" and info.value.retryable is False
