"""kubectl exec/attach on the virtual node: the remote command protocol, the WebSocket
bridge over real mutual TLS, and the local provider's stdio sessions on real processes."""
import asyncio
import base64
import dataclasses
import json

import pytest
import pytest_asyncio

from operators.providers.sessions import StdioSession
from operators.providers.local.stdio import attach_args, exec_args, open_session
from operators.virtualnode.kubelet import remotecommand as rc
from operators.virtualnode.kubelet import spdy
from operators.virtualnode.controllers.node import node_status
from operators.virtualnode.options import Options

from .kubelet_tls import serve_kubelet

# Produced by Go's json.Marshal of the metav1.Status values the kubelet writes.
GO_SUCCESS = '{"metadata":{},"status":"Success"}'
GO_EXIT_3 = ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
             'command terminated with exit code 3","reason":"NonZeroExitCode",'
             '"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')
GO_INTERNAL = ('{"metadata":{},"status":"Failure","message":"Internal error occurred: boom",'
               '"reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}')


def test_status_json_is_byte_identical_to_the_kubelets():
    assert rc.status_success().decode() == GO_SUCCESS
    assert rc.status_exit_code(3).decode() == GO_EXIT_3
    assert rc.status_internal_error("boom").decode() == GO_INTERNAL


def test_options_follow_the_kubelet():
    o = rc.parse_options({"input": "1", "output": "1", "error": "1", "tty": "1"}, ["sh"], exec_=True)
    assert (o.stdin, o.stdout, o.stderr, o.tty, o.command) == (True, True, False, True, ("sh",))
    o = rc.parse_options({"output": "1", "error": "1"}, [], exec_=False)
    assert (o.stdin, o.stdout, o.stderr, o.tty) == (False, True, True, False)
    with pytest.raises(rc.OptionsError, match="at least 1 of stdin, stdout, stderr"):
        rc.parse_options({"tty": "1", "error": "1"}, ["sh"], exec_=True)
    with pytest.raises(rc.OptionsError, match="at least one command"):
        rc.parse_options({"output": "1"}, [], exec_=True)


def test_frames():
    assert rc.encode(rc.V5, rc.STDOUT, b"hi") == b"\x01hi"
    assert rc.encode(rc.V4_BASE64, rc.STDERR, b"hi") == "2aGk="
    assert rc.decode(rc.V5, b"\x00abc") == rc.Frame(0, b"abc")
    assert rc.decode(rc.V5, b"\xff\x00") == rc.Frame(0, close=True)
    assert rc.decode(rc.V5, b"\xff\x00\x01") is None
    # v4 has no close signal: 255 is just an (unknown) channel.
    assert rc.decode(rc.V4, b"\xff\x00") == rc.Frame(255, b"\x00")
    assert rc.decode(rc.V4_BASE64, "0aGk=") == rc.Frame(0, b"hi")
    assert rc.decode(rc.V5, b"") is None and rc.decode(rc.V5, "") is None
    assert rc.decode(rc.V5, "\x00hi") == rc.Frame(0, b"hi")  # a text message, as the Python client sends str


def test_resize_stream_split_and_joined():
    d = rc.ResizeDecoder()
    # Go's json.Encoder writes one object and a newline per resize.
    assert d.feed(b'{"Width":80,"Height":24}\n{"Width":100,') == [(80, 24)]
    assert d.feed(b'"Height":30}\n') == [(100, 30)]
    assert d.feed(b'{"Width":0,"Height":0}\n') == []


def test_node_declares_websockets_to_the_kubelet():
    opts = Options(**{f.name: "x" for f in dataclasses.fields(Options) if f.default is dataclasses.MISSING})
    assert node_status(opts, kubelet_version="v1.37.2", ready=True)["declaredFeatures"] == ["ExtendWebSocketsToKubelet"]


def test_podman_arguments():
    assert exec_args("c1", ["sh", "-c", "x"], stdin=True, tty=True) == [
        "exec", "--interactive", "--tty", "--detach-keys=", "--", "c1", "sh", "-c", "x"]
    assert exec_args("c1", ["ls"], stdin=False, tty=False) == ["exec", "--detach-keys=", "--", "c1", "ls"]
    assert exec_args("c1", ["--privileged", "-it"], stdin=False, tty=False)[-4:] == [
        "--", "c1", "--privileged", "-it"]
    assert attach_args("c1", stdin=False) == [
        "attach", "--sig-proxy=false", "--detach-keys=", "--no-stdin", "--", "c1"]


async def _drain(session: StdioSession, read) -> bytes:
    out = b""
    while chunk := await read():
        out += chunk
    return out


async def test_pipe_session_keeps_streams_apart_and_ends_input():
    s = await open_session("sh", {}, ["-c", "cat; echo err >&2; exit 5"], stdin=True, tty=False)
    await s.write_stdin(b"hello\n")
    await s.close_stdin()
    out, err = await asyncio.gather(_drain(s, s.read_stdout), _drain(s, s.read_stderr))
    assert (out, err, await s.wait()) == (b"hello\n", b"err\n", 5)
    await s.close()


async def test_pty_session_is_a_resizable_controlling_terminal():
    s = await open_session("sh", {}, ["-c", "stty size; read line; stty size; echo got $line; exit 4"],
                           stdin=True, tty=True)
    out = b""
    while b"24 80" not in out:
        out += await asyncio.wait_for(s.read_stdout(), 5)
    s.resize(120, 40)
    await s.write_stdin(b"x\n")  # our terminal is raw: podman relays to the container's
    out = await asyncio.wait_for(_drain(s, s.read_stdout), 5)
    assert b"40 120" in out and b"got x" in out
    assert await s.wait() == 4
    await s.close()


class FakeSession(StdioSession):
    """Echoes stdin to stdout (and a line to stderr); exits with the code in `exit N` input."""

    def __init__(self, log):
        self.log = log
        self.out: asyncio.Queue = asyncio.Queue()
        self.code: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = False

    async def read_stdout(self):
        return await self.out.get()

    async def read_stderr(self):
        await self.code
        return b""

    async def write_stdin(self, data):
        self.log.append(("stdin", data))
        if data.startswith(b"exit "):
            self.out.put_nowait(b"")
            self.code.set_result(int(data.split()[1]))
        else:
            self.out.put_nowait(data.upper())

    async def close_stdin(self):
        self.log.append(("eof",))
        self.out.put_nowait(b"")
        if not self.code.done():
            self.code.set_result(0)

    def resize(self, width, height):
        self.log.append(("resize", width, height))

    async def wait(self):
        return await self.code

    async def close(self):
        self.closed = True


RUNNING = {"running": {}}


def _pod(state):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"containerStatuses": [{"name": "c", "state": state}]}}


SBP = {"metadata": {"name": "default.web", "uid": "sbp-1", "labels": {"sk8s.io/pod-uid": "uid-1"}}}


class FakeProvider:
    def __init__(self):
        self.log, self.sessions = [], []

    async def open_exec_session(self, ref, container, command, *, stdin, tty):
        self.log.append(("exec", ref.name, container, command, stdin, tty))
        self.sessions.append(FakeSession(self.log))
        return self.sessions[-1]

    async def open_attach_session(self, ref, container, *, stdin, tty):
        self.log.append(("attach", ref.name, container, stdin, tty))
        self.sessions.append(FakeSession(self.log))
        return self.sessions[-1]


@pytest_asyncio.fixture(loop_scope="function")
async def kubelet(tmp_path):
    provider, pods = FakeProvider(), {"web": _pod(RUNNING), "waiting": _pod({"waiting": {}})}
    async with serve_kubelet(tmp_path, streams=provider,
                             lookup=lambda ns, name: (pods.get(name), SBP if name in pods else None)) as client:
        async with client() as c:
            c.raw = client.raw
            yield c, provider


async def _collect(ws) -> dict[int, bytes]:
    got: dict[int, bytes] = {}
    async for msg in ws:
        data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
        got[data[0]] = got.get(data[0], b"") + data[1:]
    return got


async def test_exec_streams_stdin_and_reports_the_exit_code(kubelet):
    c, provider = kubelet
    url = "/exec/default/web/c?command=sh&command=-c&command=cat&input=1&output=1&error=1"
    async with c.ws_connect(url, protocols=[rc.V5, rc.V4]) as ws:
        assert ws.protocol == rc.V5
        assert (await ws.receive_bytes()) == b"\x01"  # streams ready
        await ws.send_bytes(b"\x00hello")
        assert (await ws.receive_bytes()) == b"\x01HELLO"
        await ws.send_bytes(b"\x00exit 3")
        got = await _collect(ws)
    assert json.loads(got[rc.ERROR]) == json.loads(GO_EXIT_3)
    assert provider.log[0] == ("exec", "default.web", "c", ["sh", "-c", "cat"], True, False)
    assert provider.sessions[0].closed


async def test_v5_close_signal_ends_stdin_and_success_is_reported(kubelet):
    c, provider = kubelet
    async with c.ws_connect("/exec/default/web/uid-1/c?command=cat&input=1&output=1&tty=1",
                            protocols=[rc.V5]) as ws:
        await ws.receive_bytes()
        await ws.send_bytes(b'\x04{"Width":100,"Height":30}\n')
        await ws.send_bytes(b"\x00abc")
        await ws.send_bytes(b"\xff\x00")
        got = await _collect(ws)
    assert got[rc.STDOUT] == b"ABC" and got[rc.ERROR].decode() == GO_SUCCESS
    assert provider.log[1:] == [("resize", 100, 30), ("stdin", b"abc"), ("eof",)]


async def test_attach_over_v4_base64(kubelet):
    c, provider = kubelet
    async with c.ws_connect("/attach/default/web/c?input=1&output=1", protocols=[rc.V4_BASE64]) as ws:
        assert (await ws.receive_str()) == "1"
        await ws.send_str("0" + "ZXhpdCA3")  # "exit 7": attach reports success whatever the code
        msgs = [m.data async for m in ws]
    assert msgs[-1] == "3" + base64.b64encode(GO_SUCCESS.encode()).decode()
    assert provider.log[0] == ("attach", "default.web", "c", True, False)


async def test_refusals_before_the_upgrade(kubelet):
    c, provider = kubelet
    cases = [("/exec/default/nope/c?command=ls&output=1", 404, "pod does not exist"),
             ("/exec/default/web/other-uid/c?command=ls&output=1", 404, "pod does not exist"),
             ("/exec/default/waiting/c?command=ls&output=1", 404, 'container not found ("c")'),
             ("/exec/default/web/c?output=1", 400, "at least one command"),
             ("/attach/default/web/c", 400, "at least 1 of stdin, stdout, stderr")]
    for url, code, text in cases:
        async with c.get(url, headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert (r.status, text in await r.text()) == (code, True), url
    async with c.get("/portForward/default/waiting", headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
        assert r.status == 404 and 'pod "waiting" has no running sandbox' in await r.text()
    async with c.post("/portForward/default/web?port=80") as r:
        assert r.status == 400 and "SPDY/3.1+portforward.k8s.io" in await r.text()
    # SPDY with only the protocols before v4: refused as the kubelet refuses them.
    async with c.post("/exec/default/web/c?command=ls&output=1",
                      headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade",
                               "X-Stream-Protocol-Version": "v3.channel.k8s.io"}) as r:
        assert r.status == 403 and "unable to negotiate protocol" in await r.text()
    assert provider.log == []


async def _spdy_upgrade(c, path: str, protocols: str):
    reader, writer = await c.raw()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 f"X-Stream-Protocol-Version: {protocols}\r\nContent-Length: 0\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head.decode()


async def _spdy_frames(reader, frames: spdy.FrameReader, until) -> list:
    got = []
    while not until(got):
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, got
        got += frames.feed(data)
    return got


async def test_exec_over_spdy_as_older_clients_speak_it(kubelet):
    c, provider = kubelet
    reader, writer, head = await _spdy_upgrade(c, "/exec/default/web/c?command=cat&input=1&output=1&error=1",
                                               "v4.channel.k8s.io, v3.channel.k8s.io")
    assert head.startswith("HTTP/1.1 101") and "X-Stream-Protocol-Version: v4.channel.k8s.io" in head
    w, r = spdy.FrameWriter(), spdy.FrameReader()
    for sid, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")):
        writer.write(w.syn_stream(sid, {"streamtype": [kind]}))
    writer.write(w.data(3, b"hello") + w.data(3, b"exit 3", fin=True) + w.ping(9))
    got = await _spdy_frames(reader, r, lambda fs: any(isinstance(f, spdy.Data) and f.stream_id == 1 and f.fin
                                                       for f in fs))
    assert sum(isinstance(f, spdy.Ignored) and f.type == spdy.SYN_REPLY for f in got) == 4
    data = {}
    for f in got:
        if isinstance(f, spdy.Data):
            data[f.stream_id] = data.get(f.stream_id, b"") + f.data
    assert data[5] == b"HELLO" and data[7] == b""
    assert data[1].decode() == GO_EXIT_3
    assert spdy.Ping(9) in got
    writer.close()
    assert provider.log[0] == ("exec", "default.web", "c", ["cat"], True, False)


async def test_pre_v4_protocols_report_only_failures_as_text(kubelet):
    c, provider = kubelet
    url = "/exec/default/web/c?command=sh&input=1&output=1"
    async with c.ws_connect(url, protocols=[rc.V1]) as ws:
        assert ws.protocol == rc.V1
        assert (await ws.receive_bytes()) == b"\x01"
        await ws.send_bytes(b"\x00exit 3")
        got = await _collect(ws)
    assert got[rc.ERROR] == b"command terminated with non-zero exit code: command terminated with exit code 3"
    async with c.ws_connect(url, protocols=[rc.V1_BASE64]) as ws:
        assert (await ws.receive_str()) == "1"
        await ws.send_str("0" + base64.b64encode(b"exit 0").decode())
        msgs = [m.data async for m in ws]
    assert not any(m.startswith("3") for m in msgs), msgs  # success: nothing on the error channel
    async with c.ws_connect(url) as ws:  # no subprotocol: binary, pre-v4
        assert ws.protocol is None
        assert (await ws.receive_bytes()) == b"\x01"
        await ws.send_bytes(b"\x00exit 4")
        got = await _collect(ws)
    assert got[rc.ERROR].endswith(b"exit code 4")


def test_status_for_each_protocol():
    assert rc.status_for(rc.V4, GO_SUCCESS.encode()) == GO_SUCCESS.encode()
    assert rc.status_for(rc.V1, GO_SUCCESS.encode()) is None
    assert rc.status_for(rc.PRE_V4, rc.status_internal_error("boom")) == b"Internal error occurred: boom"
