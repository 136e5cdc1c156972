"""The local provider's kubelet decisions (pure): restart back-off, probe accounting,
restart policies, and what it reports over podman's view."""
import pytest

from operators.models.podspec import PodSpec, Probe
from operators.providers.sandbox import ContainerInfo, SandboxRef
from operators.providers.local.kubelet.backoff import BackOff, crashloop_message, format_duration
from operators.providers.local.kubelet.probes import LIVENESS, READINESS, STARTUP, ProbeState, timing
from operators.providers.local.kubelet.progression import should_restart
from operators.providers.local.kubelet.runs import parse_time
from operators.providers.local.kubelet.worker import PodWorker


def crash_loop(n: int, run_for: float = 0.1) -> list[float]:
    """Waits before each of n restarts of a container that crashes after `run_for` seconds."""
    b, now, waits = BackOff(), 1000.0, []
    for _ in range(n):
        now += run_for
        finished = now
        wait = b.wait(finished, now)
        waits.append(wait)
        now += wait
        b.restarted(finished, now)
    return waits


def test_first_restart_is_immediate_then_10s_doubling_to_5_minutes():
    assert crash_loop(9) == pytest.approx([0, 10, 20, 40, 80, 160, 300, 300, 300])


def test_a_container_that_ran_10_minutes_starts_over():
    b = BackOff()
    for t in (0.0, 1.0, 12.0):  # three restarts: back-off now 40 s
        b.restarted(t, t)
    assert b.wait(34.0, 34.0) == 40
    b.restarted(34.0, 74.0)
    assert b.wait(74.0 + 601, 74.0 + 601) == 0  # ran > 2 x 300 s since the last restart
    b.restarted(74.0 + 601, 74.0 + 601)
    assert b.delay == 10


def test_wait_counts_from_the_crash_not_from_now():
    b = BackOff()
    b.restarted(0, 0)
    assert b.wait(5.0, 9.0) == pytest.approx(6.0)
    assert b.wait(5.0, 16.0) == 0


def test_messages_as_upstream():
    assert [format_duration(s) for s in (10, 20, 80, 160, 300)] == ["10s", "20s", "1m20s", "2m40s", "5m0s"]
    assert crashloop_message(20, "app", "web_default(u-1)") == \
        "back-off 20s restarting failed container=app pod=web_default(u-1)"


@pytest.mark.parametrize("policy,code,init,restart", [
    ("Always", 0, False, True), ("Always", 1, False, True),
    ("OnFailure", 0, False, False), ("OnFailure", 1, False, True),
    ("Never", 0, False, False), ("Never", 1, False, False), (None, 0, False, True),
    ("Always", 0, True, False), ("Always", 1, True, True), ("OnFailure", 1, True, True), ("Never", 1, True, False),
])
def test_restart_policy(policy, code, init, restart):
    assert should_restart(policy, code, init=init) is restart


def state(kind, **probe):
    p = Probe.model_validate({"exec": {"command": ["true"]}, **probe})
    return ProbeState(kind, timing(p, kind))


def test_probe_defaults_and_initial_results():
    t = timing(Probe.model_validate({"tcpSocket": {"port": 80}}), READINESS)
    assert (t.initial_delay, t.period, t.timeout, t.success_threshold, t.failure_threshold) == (0, 10, 1, 1, 3)
    assert state(READINESS).result is False and state(LIVENESS).result is True and state(STARTUP).result is None
    # successThreshold is 1 for liveness and startup, whatever the spec says
    assert timing(Probe.model_validate({"exec": {"command": ["x"]}, "successThreshold": 3}), LIVENESS).success_threshold == 1


def test_result_changes_only_after_threshold_in_a_row():
    st = state(READINESS, successThreshold=2, failureThreshold=3)
    assert [st.record(ok) for ok in (True, False, True, True)] == [False, False, False, True]
    assert st.result is True
    assert [st.record(ok) for ok in (False, False, True, False, False, False)] == [False] * 5 + [True]
    assert st.result is False


def test_liveness_failure_holds_until_the_container_restarts():
    st = state(LIVENESS, failureThreshold=2)
    assert not st.record(False) and st.record(False) and st.result is False
    assert st.on_hold and not st.due(100)
    st.reset()
    assert st.result is True and not st.on_hold


def test_initial_delay():
    st = state(LIVENESS, initialDelaySeconds=5)
    assert not st.due(4.9) and st.due(5)


def test_parse_podman_times():
    assert parse_time("2026-11-27T01:20:15.278226367Z") == pytest.approx(1795742415.278226)
    assert parse_time("2026-11-27 01:17:33.330312875 +0000 UTC") == pytest.approx(1795742253.330313)
    assert parse_time("0001-01-01T00:00:00Z") is None


REF = SandboxRef("ns", "web", "u-1")


def worker(**spec) -> PodWorker:
    s = PodSpec.model_validate({"containers": [{"name": "app", "image": "img"}], **spec})
    return PodWorker(None, REF, s, network="n", labels={}, dns=[], state_file=None)  # report() needs no runtime


def test_containers_wait_for_init_containers():
    w = worker(initContainers=[{"name": "a", "image": "img"}, {"name": "b", "image": "img"}])
    init, apps = w.report({"a": ContainerInfo("a", "running", started_at="T0")})
    assert [(i.name, i.state, i.reason) for i in init] == [("a", "running", None), ("b", "waiting", "PodInitializing")]
    assert (apps[0].state, apps[0].reason, apps[0].ready) == ("waiting", "PodInitializing", False)
    done = ContainerInfo("a", "terminated", exit_code=0, reason="Completed")
    init, _ = w.report({"a": done})
    assert init[0].ready is True  # a completed init container reports ready, as upstream


def test_back_off_shows_as_waiting_with_the_crash_as_last_state():
    w = worker()
    cs = w.by_name["app"]
    cs.restarts, cs.waiting = 1, ("CrashLoopBackOff", "back-off 10s restarting failed container=app pod=x")
    crashed = ContainerInfo("app", "terminated", exit_code=2, reason="Error", started_at="T0", finished_at="T1")
    _, [app] = w.report({"app": crashed})
    assert (app.state, app.reason, app.restart_count) == ("waiting", "CrashLoopBackOff", 1)
    assert app.last_state.exit_code == 2 and app.ready is False and app.started is False


def test_readiness_gates_ready_and_startup_gates_started():
    w = worker()
    cs = w.by_name["app"]
    run = ContainerInfo("app", "running", started_at="T0")
    _, [app] = w.report({"app": run})
    assert app.ready and app.started  # no probes: ready once running
    cs.probes = {STARTUP: state(STARTUP), READINESS: state(READINESS)}
    _, [app] = w.report({"app": run})
    assert not app.started and not app.ready
    cs.probes[STARTUP].record(True)
    _, [app] = w.report({"app": run})
    assert app.started and not app.ready
    cs.probes[READINESS].record(True)
    _, [app] = w.report({"app": run})
    assert app.ready


def test_sidecars_always_restart_whatever_the_pods_policy():
    assert should_restart("Never", 0, init=True, sidecar=True) and should_restart("OnFailure", 0, init=True, sidecar=True)


def test_a_sidecar_is_ready_while_it_runs_not_when_it_completes():
    w = worker(restartPolicy="Never", initContainers=[{"name": "proxy", "image": "img", "restartPolicy": "Always"}])
    init, _ = w.report({"proxy": ContainerInfo("proxy", "running", started_at="T0")})
    assert init[0].ready is True and init[0].started is True
    init, _ = w.report({"proxy": ContainerInfo("proxy", "terminated", exit_code=0, reason="Completed")})
    assert init[0].ready is False
