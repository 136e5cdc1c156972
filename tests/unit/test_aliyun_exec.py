"""kubectl exec on the aliyun provider: ExecContainerCommand through the real SDK against the
emulator (in-memory backend: canned commands), its WebSocket in Kubernetes' channel framing,
the exit code, and what is refused (attach, port-forward, a container not running)."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import aiohttp.web
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkeci.request.v20180808.ExecContainerCommandRequest import ExecContainerCommandRequest

from operators.emulator.alibaba.eci_exec import Tickets, parse
from operators.emulator.alibaba.errors import ApiError
from operators.models.contracts import LABEL_POD_UID
from operators.providers.aliyun import eci_exec_frames as ef
from operators.providers.aliyun import exec_session
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.streams import AliyunStreams, exec_params
from operators.providers.errors import ProviderError

from .emulatorkit import AK, REGION, SK, EmulatorThread, until
from .kubelet_tls import serve_kubelet
from .test_aliyun_provider import LABELS, SPEC, provider_for, ref, until_state

HOSTILE = ["echo", "a; rm -rf / #", "$(id)", "`x`", "'\"", "--", "-n", "ünï\ncode", ""]


@pytest.fixture
def emulator():
    emu = EmulatorThread(schedule_delay=0.05, start_delay=0.05, tick=0.02)
    yield emu
    emu.stop()


async def running(emu: EmulatorThread, i: int = 1) -> AliyunStreams:
    provider = provider_for(emu)
    await provider.ensure(ref(i), SPEC, LABELS)
    await until_state(provider, ref(i), "running")
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}")
    return AliyunStreams(client, "home-1")


async def drain(read) -> bytes:
    chunks = []
    while data := await asyncio.wait_for(read(), 5):
        chunks.append(data)
    return b"".join(chunks)


def group_id(emu: EmulatorThread) -> str:
    return emu.control("inventory")["ContainerGroup"][0]["ContainerGroupId"]


# -- the framing (pure) -----------------------------------------------------------------

def test_frames_and_statuses():
    assert ef.decode(ef.encode(ef.STDOUT, b"hi")) == ef.Frame(1, b"hi")
    assert ef.decode(ef.close_stdin()) == ef.Frame(0, close=True)
    assert ef.decode(b"") is None and ef.decode(b"\xff") is None
    assert ef.parse_resize(ef.decode(ef.resize(120, 40)).data) == (120, 40)
    assert ef.parse_resize(b"[1]") is None and ef.parse_resize(b'{"Width": 0, "Height": 3}') is None
    assert ef.parse_status(ef.exit_status(0)) == ef.Outcome(0)
    assert ef.parse_status(ef.exit_status(42)) == ef.Outcome(42)
    assert ef.parse_status(ef.failure_status("no such container")) == ef.Outcome(None, "no such container")
    assert ef.parse_status(b"not json").exit_code is None


def test_the_command_is_one_json_array_whatever_it_holds():
    params = exec_params(REGION, "eci-1", "app", HOSTILE, stdin=True, tty=False)
    assert json.loads(params["Command"]) == HOSTILE
    assert (params["TTY"], params["Stdin"], params["Sync"]) == ("false", "true", "false")
    assert parse({**params, "Command": params["Command"]}).command == HOSTILE


def test_exec_parameters_are_checked_as_the_cloud_does():
    base = {"ContainerGroupId": "eci-1", "ContainerName": "app", "Command": '["ls"]'}
    assert parse(base).stdin is True  # the cloud's default
    for bad, field in ((dict(base, Command="ls -l"), "Command"), (dict(base, Command=json.dumps(["x"] * 21)), "Command"),
                       (dict(base, Command=json.dumps(["x" * 257])), "Command"), (dict(base, Command="[]"), "Command"),
                       (dict(base, Sync="true", TTY="true"), "TTY")):
        with pytest.raises(ApiError, match=field):
            parse(bad)


def test_tickets_are_one_time_and_expire():
    now = [0.0]
    tickets = Tickets(clock=lambda: now[0], lifetime=30)
    request = parse({"ContainerGroupId": "eci-1", "ContainerName": "app", "Command": '["ls"]'})
    token = tickets.issue(request)
    assert len(token) >= 40 and tickets.issue(request) != token
    assert tickets.take(token) == request and tickets.take(token) is None
    late = tickets.issue(request)
    now[0] = 31
    assert tickets.take(late) is None


# -- through the SDK and the WebSocket ----------------------------------------------------

async def test_exec_streams_stdout_with_the_command_as_data(emulator):
    streams = await running(emulator)
    session = await streams.open_exec_session(ref(1), "app", HOSTILE, stdin=False, tty=False)
    out, err = await asyncio.gather(drain(session.read_stdout), drain(session.read_stderr))
    assert await session.wait() == 0
    await session.close()
    assert out == (" ".join(HOSTILE[1:]) + "\n").encode() and err == b""
    assert emulator.backend.execs[-1].command == HOSTILE  # argument by argument, as sent


async def test_exit_code_and_stderr(emulator):
    streams = await running(emulator)
    session = await streams.open_exec_session(ref(1), "app", ["fail", "3", "it", "broke"], stdin=False, tty=False)
    out, err = await asyncio.gather(drain(session.read_stdout), drain(session.read_stderr))
    assert (out, err, await session.wait()) == (b"", b"it broke\n", 3)
    await session.close()
    session = await streams.open_exec_session(ref(1), "app", ["nosuch"], stdin=False, tty=False)
    assert await drain(session.read_stderr) == b"nosuch: not found\n" and await session.wait() == 127
    await session.close()


async def test_stdin_reaches_the_command_and_its_end_ends_it(emulator):
    streams = await running(emulator)
    session = await streams.open_exec_session(ref(1), "app", ["cat"], stdin=True, tty=False)
    await session.write_stdin(b"line one\n")
    assert await asyncio.wait_for(session.read_stdout(), 5) == b"line one\n"
    await session.write_stdin(b"two")
    await session.close_stdin()
    assert await drain(session.read_stdout) == b"two" and await session.wait() == 0
    await session.close()


async def test_tty_resizes_reach_the_command(emulator):
    streams = await running(emulator)
    session = await streams.open_exec_session(ref(1), "app", ["sleep"], stdin=True, tty=True)
    session.resize(100, 30)
    session.resize(120, 40)
    await asyncio.to_thread(until, lambda: emulator.backend.execs and emulator.backend.execs[-1].sizes == [
        (100, 30), (120, 40)])
    assert emulator.backend.execs[-1].tty
    await session.close()  # the client went away: the command is stopped
    canned = emulator.backend.execs[-1]
    await asyncio.to_thread(until, lambda: canned._exit.done())
    assert canned._exit.result() == 137


async def test_the_websocket_uri_is_one_time(emulator):
    await running(emulator)
    answer = await asyncio.to_thread(emulator.call, ExecContainerCommandRequest(), RegionId=REGION,
                                     ContainerGroupId=group_id(emulator), ContainerName="app", Command='["echo","x"]')
    uri = answer["WebSocketUri"]
    assert uri.startswith(f"ws://127.0.0.1:{emulator.port}/exec/?s=") and answer["HttpUrl"]
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(uri, protocols=ef.PROTOCOLS) as ws:
            frames = [ef.decode(msg.data) async for msg in ws]
        assert ws.protocol == ef.V5
        assert frames == [ef.Frame(ef.STDOUT, b"x\n"), ef.Frame(ef.ERROR, ef.exit_status(0))]
        with pytest.raises(aiohttp.WSServerHandshakeError) as used:
            await http.ws_connect(uri)
        assert used.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(uri.split("?")[0] + "?s=guessed")


async def test_sync_answers_the_output(emulator):
    await running(emulator)
    answer = await asyncio.to_thread(emulator.call, ExecContainerCommandRequest(), RegionId=REGION,
                                     ContainerGroupId=group_id(emulator), ContainerName="app",
                                     Command='["fail","2","oops"]', Sync="true")
    assert answer["SyncResponse"] == "oops\n"
    assert emulator.backend.execs[-1].stdin is False  # Sync has no socket to send input on


async def test_refusals(emulator):
    streams = await running(emulator)
    gid = group_id(emulator)
    for params, code in (({"ContainerName": "nope"}, "InvalidParameter"),
                         ({"ContainerGroupId": "eci-missing"}, "InvalidParameter.NotFound"),
                         ({"Command": "rm -rf /"}, "InvalidParameter")):
        call = {"RegionId": REGION, "ContainerGroupId": gid, "ContainerName": "app", "Command": '["ls"]', **params}
        with pytest.raises(ServerException) as refused:
            await asyncio.to_thread(emulator.call, ExecContainerCommandRequest(), **call)
        assert refused.value.get_error_code() == code
    with pytest.raises(ProviderError, match="attach: ECI has no API"):
        await streams.open_attach_session(ref(1), "app", stdin=False, tty=False)
    with pytest.raises(ProviderError, match="port-forward"):
        await streams.open_port_stream(ref(1), 80)
    with pytest.raises(ProviderError, match="no container group"):
        await streams.open_exec_session(ref(9), "app", ["ls"], stdin=False, tty=False)


async def test_a_container_not_running_is_incorrect_status(emulator):
    provider = provider_for(emulator)
    await provider.ensure(ref(3), SPEC, LABELS)  # Scheduling: nothing runs yet
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emulator.port}")
    with pytest.raises(ProviderError, match="IncorrectStatus.*ContainerName:app") as refused:
        await AliyunStreams(client, "home-1").open_exec_session(ref(3), "app", ["ls"], stdin=False, tty=False)
    assert refused.value.reason == "IncorrectStatus"


# -- kubectl exec: the virtual node's kubelet API on the aliyun streaming side ---------------

async def test_kubectl_exec_through_the_kubelet_api_reports_the_exit_code(emulator, tmp_path):
    streams = await running(emulator)
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid-1"},
           "spec": {"containers": [{"name": "app", "image": "busybox"}]},
           "status": {"containerStatuses": [{"name": "app", "state": {"running": {}}}]}}
    sbp = {"metadata": {"name": ref(1).name, "uid": ref(1).uid, "labels": {LABEL_POD_UID: "pod-uid-1"}}}
    async with serve_kubelet(tmp_path, streams=streams, lookup=lambda ns, name: (pod, sbp)) as client:
        async with client() as c:
            url = "/exec/default/web/app?command=fail&command=3&command=it&command=broke&output=1&error=1"
            async with c.ws_connect(url, protocols=["v5.channel.k8s.io"]) as ws:
                got: dict[int, bytes] = {}
                async for msg in ws:
                    got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
            assert got[ef.STDERR] == b"it broke\n"
            status = json.loads(got[ef.ERROR])  # what kubectl turns into its own exit code
            assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "3"
            async with c.ws_connect("/attach/default/web/app?output=1", protocols=["v5.channel.k8s.io"]) as ws:
                msgs = [msg.data async for msg in ws]
            assert b"attach: ECI has no API" in msgs[-1] and msgs[-1][0] == ef.ERROR


@pytest.mark.parametrize("last, message", [(ef.encode(ef.ERROR, ef.failure_status("no such process")), "no such process"),
                                           (None, "closed without the command's exit status")])
async def test_no_exit_code_is_a_failure_that_says_why(last, message):
    async def handler(request):
        ws = aiohttp.web.WebSocketResponse(protocols=ef.PROTOCOLS)
        await ws.prepare(request)
        await ws.send_bytes(ef.encode(ef.STDOUT, b"partial"))
        if last is not None:
            await ws.send_bytes(last)
        await ws.close()
        return ws

    app = aiohttp.web.Application()
    app.router.add_get("/exec/", handler)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        session = await exec_session.connect(f"ws://127.0.0.1:{port}/exec/?s=t", tty=False)
        out, err = await asyncio.gather(drain(session.read_stdout), drain(session.read_stderr))
        assert out == b"partial" and message in err.decode() and await session.wait() == 1
        await session.close()
        with pytest.raises(ProviderError, match="HTTP 404") as refused:
            await exec_session.connect(f"ws://127.0.0.1:{port}/other?s=secret-ticket", tty=False)
        assert "secret-ticket" not in str(refused.value)  # the URI's ticket is never in a message
    finally:
        await runner.cleanup()
