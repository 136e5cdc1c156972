"""Sleep mode's pure parts and its wake listener (the e2e: tests/e2e/test_sleep.py)."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from operators.serverlesscluster import planes

from operators.models.contracts import CONDITION_CONTROL_PLANE_READY, CONDITION_READY
from operators.serverlesscluster import idle, wake, wakerules
from operators.serverlesscluster.status import cluster_status, sleeping_status
from operators.serverlesscluster.tenant_pki import OPERATOR_USER, VNODE_USER


def _rule_for(policy: dict, user: str, verb: str, resource: str, group: str = "") -> str:
    """The level the apiserver's first-match audit policy gives a request (a small model of it)."""
    for rule in policy["rules"]:
        if "users" in rule and user not in rule["users"]:
            continue
        if "userGroups" in rule and not (user.startswith("system:serviceaccount:kube-system:")
                                         and "system:serviceaccounts:kube-system" in rule["userGroups"]):
            continue
        if "verbs" in rule and verb not in rule["verbs"]:
            continue
        if "nonResourceURLs" in rule:
            continue  # every request below is a resource request
        if "resources" in rule and not any(g["group"] == group and resource in g["resources"]
                                           for g in rule["resources"]):
            continue
        return rule["level"]
    return "None"


@pytest.mark.parametrize("user,verb,resource,group,level", [
    ("admin", "list", "pods", "", "Metadata"),                        # the tenant: activity
    ("system:serviceaccount:default:app", "watch", "configmaps", "", "Metadata"),
    (VNODE_USER, "patch", "pods/status", "", "Metadata"),              # a pod changed
    ("system:serviceaccount:kube-system:replicaset-controller", "create", "pods", "", "Metadata"),
    (OPERATOR_USER, "get", "nodes", "", "None"),                      # the health timer
    (VNODE_USER, "update", "leases", "coordination.k8s.io", "None"),  # heartbeats
    (VNODE_USER, "patch", "nodes/status", "", "None"),
    (VNODE_USER, "watch", "pods", "", "None"),                        # informers
    ("system:serviceaccount:kube-system:generic-garbage-collector", "list", "pods", "", "None"),
    ("system:kube-controller-manager", "create", "tokenreviews", "authentication.k8s.io", "None"),
    ("admin", "create", "events", "", "None"),
])
def test_audit_policy_logs_activity_only(user, verb, resource, group, level):
    assert _rule_for(idle.audit_policy(), user, verb, resource, group) == level


def test_audit_policy_never_logs_bodies():
    assert {r["level"] for r in idle.audit_policy()["rules"]} == {"None", "Metadata"}


def test_idle_clock_counts_from_the_latest_activity_or_wake(tmp_path):
    (tmp_path / "claimed-by").write_text("uid")
    (tmp_path / idle.AUDIT_LOG).write_text("{}\n")
    now = time.time()
    os.utime(tmp_path / "claimed-by", (now - 500, now - 500))
    os.utime(tmp_path / idle.AUDIT_LOG, (now - 300, now - 300))
    assert 299 <= idle.idle_for(tmp_path, now) <= 301
    idle.mark_awake(tmp_path)  # a wake restarts the clock
    assert idle.idle_for(tmp_path) < 5


def test_should_sleep_only_when_enabled_serving_and_idle_long_enough():
    assert idle.should_sleep(True, 901, 900, True)
    assert not idle.should_sleep(True, 899, 900, True)
    assert not idle.should_sleep(False, 10_000, 900, True)
    assert not idle.should_sleep(True, 10_000, 900, False)


def test_clock_driven_controllers_keep_a_tenant_awake():
    cron = {"metadata": {"namespace": "a", "name": "nightly"}, "spec": {}}
    assert "a/nightly" in idle.sleep_blocker([cron], [])
    assert idle.sleep_blocker([{**cron, "spec": {"suspend": True}}], []) is None
    hpa = {"metadata": {"namespace": "b", "name": "web"}}
    assert "b/web" in idle.sleep_blocker([], [hpa])
    assert idle.sleep_blocker([], []) is None


def test_asleep_marker_round_trip(tmp_path):
    assert idle.asleep(tmp_path) is None
    idle.mark_asleep(tmp_path, ["kube-apiserver", "virtual-node"], "ns", "c1")
    info = idle.asleep(tmp_path)
    assert info["components"] == ["kube-apiserver", "virtual-node"] and info["name"] == "c1"
    idle.mark_awake(tmp_path)
    assert idle.asleep(tmp_path) is None


def test_sleeping_status_is_ready_but_says_the_plane_sleeps():
    prev = cluster_status(generation=1, prev={}, control_plane=True, node=True, endpoint="https://127.0.0.1:1",
                          secret="s", sandbox_namespace="ns", version="v1.37.2")
    new = sleeping_status(prev, 1, "idle for 900s")
    conds = {c["type"]: c for c in new["conditions"]}
    assert new["phase"] == "Sleeping"
    assert conds[CONDITION_READY]["status"] == "True" and conds[CONDITION_READY]["reason"] == "Sleeping"
    # Ready stayed True: its transition time did not move.
    old_ready = next(c for c in prev["conditions"] if c["type"] == CONDITION_READY)
    assert conds[CONDITION_READY]["lastTransitionTime"] == old_ready["lastTransitionTime"]
    assert conds[CONDITION_CONTROL_PLANE_READY]["status"] == "False"


def test_wake_rules_validate_ports_and_name_the_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    script = wakerules.table_script(40000, [30001, 30000, 30001])
    assert "elements = { 30000, 30001 }" in script
    assert f"meta mark != {wakerules.MARK:#x}" in script and "dnat to 127.0.0.1:40000" in script
    assert wakerules.table().startswith("sk8s-wake-") and wakerules.table() in script
    assert "elements" not in wakerules.table_script(40000, [])
    for bad in (0, 70000, -1):
        with pytest.raises(ValueError):
            wakerules.hold(bad)
    assert wakerules.release(30000).startswith(wakerules.hold(30000))


@pytest.mark.skipif(shutil.which("nft") is None, reason="no nft")
def test_wake_rules_parse(monkeypatch, tmp_path):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=wakerules.table_script(40000, [30000]), text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr


class _Upstream:
    """A stand-in apiserver: records what it got and answers 'pong:' + it."""

    def __init__(self):
        self.got: list[bytes] = []

    async def serve(self, reader, writer):
        data = await reader.read(1024)
        self.got.append(data)
        writer.write(b"pong:" + data)
        await writer.drain()
        writer.close()


async def _listener(upstream_port: int, calls: list):
    async def waker(port, loopback):
        calls.append((port, loopback))
        return True

    listener = wake.WakeListener(waker)
    port = await listener.start()
    return listener, port


def test_wake_listener_relays_after_the_first_bytes_and_ignores_bare_connects(monkeypatch):
    async def main():
        up = _Upstream()
        server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
        up_port = server.sockets[0].getsockname()[1]
        monkeypatch.setattr(wake, "original_port", lambda sock: up_port)  # what conntrack would say
        calls: list = []
        listener, port = await _listener(up_port, calls)
        # A health check: connects, sends nothing, leaves. Nothing wakes.
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        await asyncio.sleep(0.2)
        assert calls == []
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"\x16\x03\x01hello")
        assert await asyncio.wait_for(r.read(1024), 5) == b"pong:\x16\x03\x01hello"
        assert calls == [(up_port, False)] and up.got == [b"\x16\x03\x01hello"]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"\x16\x03\x01..." + wake.LOOPBACK_SNI + b"...")
        await asyncio.wait_for(r.read(1024), 5)
        assert calls[-1] == (up_port, True)  # the apiserver's own connection, told apart
        await listener.stop()
        server.close()
    asyncio.run(main())


def test_wake_listener_closes_when_nothing_woke(monkeypatch):
    async def main():
        monkeypatch.setattr(wake, "original_port", lambda sock: 1)

        async def waker(port, loopback):
            return False
        listener = wake.WakeListener(waker)
        port = await listener.start()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hello")
        assert await asyncio.wait_for(r.read(1024), 5) == b""  # closed, not hanging
        await listener.stop()
    asyncio.run(main())


def test_a_slow_wake_relays_once_the_apiserver_listens_within_the_handshake_budget(monkeypatch):
    async def main():
        up = _Upstream()
        server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
        up_port = server.sockets[0].getsockname()[1]
        monkeypatch.setattr(wake, "original_port", lambda sock: up_port)
        monkeypatch.setattr(wake, "READY_BUDGET", 0.3)
        calls: list = []

        async def waker(port, listening_will_do):
            calls.append(listening_will_do)
            if not listening_will_do:
                await asyncio.sleep(60)  # not ready for a long while
            return True
        listener = wake.WakeListener(waker)
        port = await listener.start()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hello")
        t0 = time.monotonic()
        assert await asyncio.wait_for(r.read(1024), 5) == b"pong:hello"
        assert time.monotonic() - t0 < 3 and calls == [False, True]
        await listener.stop()
        server.close()
    asyncio.run(main())


def test_without_nftables_the_operator_runs_on_and_no_tenant_sleeps(monkeypatch, tmp_path):
    from operators.serverlesscluster import power

    async def no_nft(script):
        raise RuntimeError("nft: not installed")
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    monkeypatch.setattr(power, "_nft", no_nft)

    async def main():
        p = power.Power()
        await p.start()  # no exception: the operator must not crash-loop for it
        assert "not installed" in p.unavailable
        with pytest.raises(RuntimeError, match="unavailable"):
            await p.sleep(object(), "ns", "c")
        # Deleting a cluster asks to forget its plane: no rule to change, no error (a cluster
        # of an operator without nftables was not deletable: found on kind).
        plane = planes.Plane(tmp_path / "p", "0123456789ab", 1, 2, "/sk8s/tenants/0123456789ab")
        await p.forget(plane)
        await p.stop()
    asyncio.run(main())


def test_planes_run_as_pods_never_sleep(monkeypatch, tmp_path):
    from operators.serverlesscluster import power

    async def nft_must_not_run(script):
        raise AssertionError("no wake rule for planes run as Pods")
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    monkeypatch.setenv("SK8S_PLANE_RUNNER", "pods")
    monkeypatch.setattr(power, "_nft", nft_must_not_run)

    async def main():
        p = power.Power()
        await p.start()
        assert "Pods" in p.unavailable
        with pytest.raises(RuntimeError, match="Pods"):
            await p.sleep(object(), "ns", "c")
        await p.stop()
    asyncio.run(main())


def test_a_falling_asleep_plane_stops_its_own_clients_before_its_port_is_held(monkeypatch, tmp_path):
    """A controller-manager or virtual node that opens a connection while it shuts down must
    reach the apiserver, not the wake listener: that woke the plane right after the sleep
    (seen in CI). Its clients stop first, then the port is held, then the apiserver stops."""
    from types import SimpleNamespace

    from operators.serverlesscluster import cluster, power
    steps: list[str] = []

    class Procs:
        def running(self, name):
            return name != "kube-scheduler"

        def stop(self, name, timeout=10.0):
            steps.append(f"stop {name}")

        def stop_all(self, order=(), timeout=10.0):
            for name in order:
                if not any(s == f"stop {name}" for s in steps):
                    steps.append(f"stop {name}")

    async def nft(script):
        steps.append("hold" if "add element" in script else script)
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    monkeypatch.setattr(power, "_nft", nft)
    monkeypatch.setattr(cluster, "processes", lambda t: Procs())
    monkeypatch.setattr(idle, "mark_asleep", lambda d, ran, ns, n: steps.append(f"asleep {','.join(ran)}"))
    t = SimpleNamespace(ports=SimpleNamespace(apiserver=30123), directory=tmp_path)
    asyncio.run(power.Power().sleep(t, "ns", "c"))
    assert steps.index("hold") > max(steps.index(f"stop {n}") for n in
                                     ("virtual-node", "kube-scheduler", "kube-controller-manager"))
    assert steps.index("hold") < steps.index("stop kube-apiserver")
    assert "asleep virtual-node,kube-controller-manager,kube-apiserver" in steps
