"""Lifecycle hooks and termination messages of the local kubelet: the hook runner's outcomes
and messages, the worker's order (postStart before the container counts as started,
preStop before SIGTERM, within the grace period), the termination-log file and its
reading, the mount's argv, and the virtual node's copy of the fields."""
from __future__ import annotations

import asyncio
import os
import stat

import pytest

from operators.models.podspec import Container, LifecycleHandler, PodSpec
from operators.providers.errors import InvalidSpecError
from operators.providers.local import termlog
from operators.providers.local.kubelet import hooks
from operators.providers.local.kubelet.prober import PodNetwork
from operators.providers.local.kubelet.worker import PodWorker
from operators.providers.local.spec import run_args
from operators.providers.sandbox import ContainerInfo, SandboxRef
from operators.virtualnode.mapping.spec import _container, dropped_fields

from .test_kubelet_prober import _server_in, pod_netns  # noqa: F401 - a fixture, used by name

REF = SandboxRef("ns", "web", "u-1")
C = Container.model_validate({"name": "app", "image": "img"})


def handler(spec: dict) -> LifecycleHandler:
    return LifecycleHandler.model_validate(spec)


async def no_network() -> PodNetwork:
    return PodNetwork(None, None)


# --- hooks.run -----------------------------------------------------------------------

def test_exec_hook_passes_the_command_as_given_and_words_a_failure_as_the_kubelet():
    seen = []

    async def exec_fn(command, timeout):
        seen.append(command)
        return (0, "") if command[0] == "ok" else (3, "boom\n")

    async def main():
        assert await hooks.run(handler({"exec": {"command": ["ok", "--privileged"]}}), C, "web_ns(u-1)",
                               exec_fn=exec_fn, network=no_network) is None
        msg = await hooks.run(handler({"exec": {"command": ["bad", "x"]}}), C, "web_ns(u-1)",
                              exec_fn=exec_fn, network=no_network)
        assert msg.startswith('Exec lifecycle hook ([bad x]) for Container "app" in Pod "web_ns(u-1)" failed')
        assert "exited with 3" in msg and 'message: "boom\\n"' in msg
    asyncio.run(main())
    assert seen == [["ok", "--privileged"], ["bad", "x"]]


def test_sleep_hook_sleeps():
    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await hooks.run(handler({"sleep": {"seconds": 1}}), C, "p", exec_fn=None, network=no_network) is None
        assert loop.time() - t0 >= 0.95
    asyncio.run(main())


def test_http_hook_never_leaves_the_pod_and_fails_without_a_namespace():
    async def main():
        msg = await hooks.run(handler({"httpGet": {"port": 80, "path": "/x"}}), C, "p", exec_fn=None,
                              network=no_network)
        assert msg.startswith("HTTP lifecycle hook (/x) for Container") and "no IP address" in msg
        msg = await hooks.run(handler({"httpGet": {"port": 80}}), C, "p", exec_fn=None,
                              network=lambda: _net("10.0.0.9", None))
        assert "no network namespace" in msg
    asyncio.run(main())


async def _net(ip, ns):
    return PodNetwork(ip, ns)


def test_http_hook_accepts_any_response_in_the_pod_but_not_a_refused_connection(pod_netns):
    async def main():
        seen = []
        server = await _server_in(pod_netns.netns, "0.0.0.0", 0, 500, seen)
        port = server.sockets[0].getsockname()[1]
        # Upstream fails an httpGet hook only when the request fails: a 500 is an answer.
        assert await hooks.run(handler({"httpGet": {"port": port, "path": "/quit"}}), C, "p", exec_fn=None,
                               network=lambda: _net(pod_netns.ip, pod_netns.netns)) is None
        assert seen and seen[0].startswith("GET /quit HTTP/1.1")
        server.close()
        await server.wait_closed()
        msg = await hooks.run(handler({"httpGet": {"port": port, "host": "localhost"}}), C, "p", exec_fn=None,
                              network=lambda: _net(pod_netns.ip, pod_netns.netns))
        assert msg is not None and "connection refused" in msg
    asyncio.run(main())


# --- the worker ------------------------------------------------------------------------

class Runtime:
    """The runtime calls a hook and a kill make, recorded in order."""

    def __init__(self, exec_code: int = 0):
        self.calls: list[tuple] = []
        self.exec_code = exec_code
        self.state = {"Status": "running", "StartedAt": "2026-11-29T10:00:00Z"}

    async def exec_command(self, ref, container, command, timeout):
        self.calls.append(("exec", container, tuple(command)))
        await asyncio.sleep(0.05)
        return self.exec_code, "out"

    async def stop_container(self, ref, container, grace):
        self.calls.append(("stop", container, grace))

    async def inspect_container(self, ref, container):
        return {"State": self.state}


def hooked_worker(rt: Runtime, lifecycle: dict, grace: int = 30) -> tuple[PodWorker, list]:
    spec = PodSpec.model_validate({"terminationGracePeriodSeconds": grace, "containers": [
        {"name": "app", "image": "img", "lifecycle": lifecycle}]})
    events = []
    w = PodWorker(rt, REF, spec, network="n", labels={}, dns=[], state_file=None,
                  events=lambda ref, t, reason, msg, **_: events.append((reason, msg)))
    return w, events


def test_post_start_runs_once_per_run_and_the_container_is_not_started_meanwhile():
    rt = Runtime()
    w, events = hooked_worker(rt, {"postStart": {"exec": {"command": ["touch", "/ready"]}}})
    cs = w.by_name["app"]
    seen = []

    async def main():
        task = asyncio.create_task(w._post_start(cs, rt.state))
        await asyncio.sleep(0.01)
        _, [app] = w.report({"app": ContainerInfo("app", "running", started_at="T0")})
        seen.append((app.state, app.reason, app.started))
        assert await task is True
        assert await w._post_start(cs, rt.state) is True  # the same run: not again
    asyncio.run(main())
    assert seen == [("waiting", "ContainerCreating", False)]
    assert rt.calls == [("exec", "app", ("touch", "/ready"))] and events == []
    _, [app] = w.report({"app": ContainerInfo("app", "running", started_at="T0")})
    assert (app.state, app.started) == ("running", True)


def test_a_failing_post_start_kills_the_container_with_the_kubelets_events():
    rt = Runtime(exec_code=1)
    w, events = hooked_worker(rt, {"postStart": {"exec": {"command": ["false"]}}}, grace=7)
    assert asyncio.run(w._post_start(w.by_name["app"], rt.state)) is False
    assert [e[0] for e in events] == ["FailedPostStartHook", "Killing"]
    assert events[1][1] == "FailedPostStartHook"
    assert rt.calls[-1] == ("stop", "app", 7)


def test_pre_stop_runs_before_sigterm_and_counts_against_the_grace_period():
    rt = Runtime()
    w, events = hooked_worker(rt, {"preStop": {"sleep": {"seconds": 2}}}, grace=5)

    async def main():
        t0 = asyncio.get_running_loop().time()
        await w.terminate(5)
        return asyncio.get_running_loop().time() - t0
    took = asyncio.run(main())
    assert took >= 1.9
    assert rt.calls == [("stop", "app", 3)]  # SIGTERM after the hook, with what is left of 5 s


def test_pre_stop_is_cut_at_the_grace_period_and_sigterm_keeps_a_minimal_window():
    rt = Runtime()
    w, events = hooked_worker(rt, {"preStop": {"sleep": {"seconds": 30}}}, grace=1)
    asyncio.run(w.terminate(1))
    assert rt.calls == [("stop", "app", 2)] and events == [("Killing", "Stopping container app")]


def test_a_failing_pre_stop_is_an_event_and_sigterm_follows():
    rt = Runtime(exec_code=2)
    w, events = hooked_worker(rt, {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}})
    asyncio.run(w.terminate(30))
    assert [e[0] for e in events] == ["Killing", "FailedPreStopHook"]  # the kubelet's order
    assert [c[0] for c in rt.calls] == ["exec", "stop"]


def test_no_pre_stop_on_a_forced_deletion():
    rt = Runtime()
    w, _ = hooked_worker(rt, {"preStop": {"exec": {"command": ["x"]}}})
    asyncio.run(w.terminate(0))
    assert rt.calls == []


def test_the_termination_message_is_reported_after_the_runtimes_own():
    w, _ = hooked_worker(Runtime(), {})
    w.by_name["app"].message = "bye"
    _, [app] = w.report({"app": ContainerInfo("app", "terminated", exit_code=1, message="oom?")})
    assert app.message == "oom?: bye"
    w.by_name["app"].message = ""
    _, [app] = w.report({"app": ContainerInfo("app", "terminated", exit_code=1)})
    assert app.message is None


# --- termlog ----------------------------------------------------------------------------

def tm(path: str | None, policy: str | None = None) -> Container:
    return Container.model_construct(name="app", image="img", terminationMessagePath=path,
                                     terminationMessagePolicy=policy)


@pytest.mark.parametrize("path", ["relative/log", "/a:/b", "/a,b", "/x\nline", "/x\0y"])
def test_a_termination_message_path_that_is_not_one_absolute_path_is_refused(path):
    with pytest.raises(InvalidSpecError, match="terminationMessagePath"):
        termlog.check_path(tm(path))


def test_the_tenant_path_is_only_the_mounts_destination(tmp_path):
    src = termlog.host_file(tmp_path, REF, "app")
    spec = PodSpec.model_validate({"containers": [{"name": "app", "image": "img",
                                                   "terminationMessagePath": "/dev/termination-log"}]})
    args = run_args(REF, spec, spec.containers[0], network="n", labels={}, new_pod=True, termination_log=src)
    assert f"--volume={src}:/dev/termination-log:rw" in args[:args.index("--")]
    assert termlog.mount_args(tm(None), src) == []


def test_fallback_to_logs_only_for_a_failed_container_that_wrote_nothing():
    assert termlog.needs_logs("FallbackToLogsOnError", 1, "") is True
    assert termlog.needs_logs("FallbackToLogsOnError", 1, None) is True
    assert termlog.needs_logs("FallbackToLogsOnError", 1, "mine") is False
    assert termlog.needs_logs("FallbackToLogsOnError", 0, "") is False
    assert termlog.needs_logs("File", 1, "") is False


def test_log_tail_is_80_lines_and_at_most_2048_bytes():
    lines = [f"line {i}\n" for i in range(200)]
    assert termlog.log_tail(lines) == "".join(lines[-80:])[-2048:]
    assert termlog.log_tail(lines).startswith("line 120\n")
    long = ["x" * 1000 + "\n"] * 5
    assert len(termlog.log_tail(long).encode()) == 2048


def test_k8s_file_lines_join_partial_lines():
    data = (b"2026-11-29T10:00:00.1Z stdout P hel\n2026-11-29T10:00:00.2Z stdout F lo\n"
            b"2026-11-29T10:00:00.3Z stderr F oops\n")
    assert termlog.k8s_file_lines(data) == ["hello\n", "oops\n"]


def test_the_file_is_fresh_writable_by_anyone_and_read_to_its_last_4096_bytes(tmp_path):
    (tmp_path / REF.uid).mkdir()
    f = termlog.prepare(tmp_path, REF, tm("/dev/termination-log"))
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 and f.read_bytes() == b""
    f.write_text("a" * 5000 + "END")
    assert termlog.read_file(f) == ("a" * 5000 + "END")[-4096:]
    assert termlog.prepare(tmp_path, REF, tm("/dev/termination-log")).read_bytes() == b""  # the next run's


def test_a_symlink_or_a_fifo_is_never_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    link = tmp_path / "link"
    link.symlink_to(secret)
    assert termlog.read_file(link) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert termlog.read_file(fifo) is None
    assert termlog.read_file(tmp_path / "missing") is None


def test_read_log_of_a_k8s_file(tmp_path):
    log = tmp_path / "ctr.log"
    log.write_bytes(b"".join(f"2026-11-29T10:00:00Z stdout F l{i}\n".encode() for i in range(100)))
    assert termlog.read_log(str(log)).splitlines() == [f"l{i}" for i in range(20, 100)]
    assert termlog.read_log(str(tmp_path / "none")) == ""
    # As podman 4 inspects a container: the log's path is in HostConfig.LogConfig.
    assert termlog.log_path({"HostConfig": {"LogConfig": {"Type": "k8s-file", "Path": str(log)}}}) == str(log)
    assert termlog.log_path({}) == ""


# --- the virtual node's copy ------------------------------------------------------------

def test_the_virtual_node_copies_hooks_and_termination_fields_instead_of_warning():
    c = {"name": "app", "image": "img", "terminationMessagePath": "/dev/termination-log",
         "terminationMessagePolicy": "FallbackToLogsOnError",
         "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "x"]}},
                       "preStop": {"httpGet": {"port": 80, "path": "/q", "host": "127.0.0.1"}}}}
    out = _container(c, [])
    assert out["lifecycle"] == {"postStart": {"exec": {"command": ["sh", "-c", "x"]}},
                                "preStop": {"httpGet": {"port": 80, "path": "/q", "host": "127.0.0.1"}}}
    assert out["terminationMessagePath"] == "/dev/termination-log"
    assert out["terminationMessagePolicy"] == "FallbackToLogsOnError"
    Container.model_validate(out)  # the SandboxPod schema takes it
    assert dropped_fields({"spec": {"containers": [c]}}) == []
    sleep = _container({"name": "a", "image": "i", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}, [])
    assert sleep["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_a_hook_the_kubelet_does_not_run_is_still_named():
    c = {"name": "app", "image": "img", "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}}
    assert "lifecycle" not in _container(c, [])
    assert dropped_fields({"spec": {"containers": [c]}}) == ["container app: lifecycle.preStop"]


def test_an_exit_is_reported_with_its_message_not_before():
    class MessageRuntime(Runtime):
        async def termination_message(self, ref, c, data):
            return "last words"
    rt = MessageRuntime()
    w, _ = hooked_worker(rt, {})
    cs = w.by_name["app"]
    w.task = object()  # a running kubelet loop
    w.on_died("app", 1)
    exited = ContainerInfo("app", "terminated", exit_code=1, reason="Error", started_at="2026-11-29T10:00:00Z",
                           finished_at="2026-11-29T10:00:05Z")
    _, [app] = w.report({"app": exited})
    assert (app.state, app.exit_code, app.message) == ("running", None, None)  # not read yet
    asyncio.run(w._read_message(cs, {"State": {"ExitCode": 1, "FinishedAt": "2026-11-29T10:00:05.5Z"}}))
    _, [app] = w.report({"app": exited})
    assert (app.state, app.exit_code, app.message) == ("terminated", 1, "last words")
    w.on_died("app", 1)  # a late event of the exit already read hides nothing
    assert w.report({"app": exited})[1][0].state == "terminated"
    w.task = None
    w.on_died("app", 1)  # nothing reads it any more (deleted, evicted): reported as it is
    assert w.report({"app": exited})[1][0].state == "terminated"


def test_hostile_termination_paths_are_refused_or_one_mount_destination(tmp_path):
    from .test_local_argv import HOSTILE, parse
    src = termlog.host_file(tmp_path, REF, "app")
    for value in HOSTILE:
        path = "/" + value
        c = tm(path)
        spec = PodSpec.model_construct(containers=[c], restartPolicy="Always", terminationGracePeriodSeconds=30)
        try:
            args = run_args(REF, spec, c, network="n", labels={}, new_pod=False, termination_log=src)
        except InvalidSpecError as exc:
            assert "terminationMessagePath" in str(exc) and any(ch in path for ch in ":,\n\t\0"), path
            continue
        options, positional = parse(args[1:])
        assert ("volume", f"{src}:{path}:rw") in options
        assert positional == ["img"]
