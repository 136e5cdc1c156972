"""A tenant recovers by itself: the health timer restarts a killed tenant apiserver or
virtual node and the cluster returns to Ready, without an operator restart; meanwhile
its status (and the Node's) says what is wrong. `sk8s status` shows every tenant part."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import IMAGE, condition
from .tenant import cluster_uid, delete_cluster, make_cluster, plane_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def avail(meta):
    t = make_cluster(meta, "avail")
    yield t
    delete_cluster(meta, "avail")


def _plane_dir(meta, cluster: str) -> Path:
    return plane_dir(meta, cluster_uid(meta, cluster))


def _pid(meta, cluster: str, component: str) -> int:
    return int((_plane_dir(meta, cluster) / "run" / f"{component}.pid").read_text())


def _operator(meta) -> tuple[int, int]:
    comp = meta.state()["components"]["serverlesscluster-operator"]
    return comp["pid"], comp["restarts"]


def _watch_cluster_ready(meta, name: str, seen: list, stop: threading.Event) -> None:
    while not stop.is_set():
        sc = meta.get("serverlesscluster", name, "default")
        if sc:
            seen.append((condition(sc, "Ready"), (sc.get("status") or {}).get("message")))
        time.sleep(0.3)


def _wait_seen(seen: list, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(s) for s in list(seen)):
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; seen {seen[-10:]}")


def test_killed_tenant_apiserver_comes_back_and_the_cluster_is_ready_again(meta, avail):
    operator = _operator(meta)
    old = _pid(meta, "avail", "kube-apiserver")
    seen: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_cluster_ready, args=(meta, "avail", seen, stop), daemon=True)
    watcher.start()
    try:
        os.kill(old, signal.SIGKILL)
        _wait_seen(seen, lambda s: s[0] != "True", 40, "the cluster to be reported not Ready")
        # ... and Ready again, by the timer alone (it used to stop looking once not Ready).
        since = len(seen)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(s[0] == "True" for s in seen[since:]):
            time.sleep(0.3)
        assert any(s[0] == "True" for s in seen[since:]), f"never Ready again; seen {seen[-10:]}"
    finally:
        stop.set()
        watcher.join()
    messages = [m for r, m in seen if r != "True" and m]
    assert any("kube-apiserver" in m for m in messages), messages  # the status named the cause
    assert _pid(meta, "avail", "kube-apiserver") != old
    assert _operator(meta) == operator, "the operator was restarted"
    avail.kubectl("get", "nodes")  # the tenant answers again
    events = meta.kubectl("get", "events", "-n", "default", "--field-selector",
                          "involvedObject.name=avail,reason=ComponentRestarted", "-o", "json").stdout
    assert any("kube-apiserver" in e["message"] for e in json.loads(events)["items"])


def _node_taints(t) -> list[str]:
    node = json.loads(t.kubectl("get", "node", "virtual-node", "-o", "json").stdout)
    return [x["key"] for x in node["spec"].get("taints") or [] if x["key"].startswith("node.kubernetes.io/")]


def test_killed_virtual_node_makes_the_node_unknown_then_comes_back(meta, avail):
    avail.kubectl("run", "steady", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                  "--", "sleep", "3600")
    before = avail.wait_pod("steady", lambda p: condition(p, "Ready") == "True", timeout=90)
    operator = _operator(meta)
    # Every change of the Node's Ready condition, as a client of the tenant sees it.
    watch = subprocess.Popen(
        [str(meta.bindir / "kubectl"), f"--kubeconfig={avail.kubeconfig}", "get", "node", "virtual-node",
         "--watch", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status} '
                          '{.status.conditions[?(@.type=="Ready")].reason}{"\\n"}'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(ln.strip()) for ln in watch.stdout], daemon=True)
    reader.start()
    try:
        _wait_seen(lines, lambda ln: ln.startswith("True"), 30, "the watch to show the Node Ready")
        old = _pid(meta, "avail", "virtual-node")
        os.kill(old, signal.SIGKILL)
        _wait_seen(lines, lambda ln: ln.startswith("Unknown NodeStatusUnknown"), 40,
                   "the Node of the dead virtual node to turn Unknown")
        unknown_at = next(i for i, ln in enumerate(lines) if ln.startswith("Unknown"))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(ln.startswith("True") for ln in lines[unknown_at:]):
            time.sleep(0.2)
        assert any(ln.startswith("True") for ln in lines[unknown_at:]), f"Node not Ready again: {lines}"
    finally:
        watch.terminate()
        watch.wait()
    assert _pid(meta, "avail", "virtual-node") != old
    meta.wait_for("serverlesscluster", "avail", "default", lambda sc: condition(sc, "Ready") == "True",
                  timeout=60)
    # Ready again: no condition taint (not-ready, unreachable) is left on the Node.
    deadline, taints = time.monotonic() + 20, _node_taints(avail)
    while taints and time.monotonic() < deadline:
        time.sleep(0.5)
        taints = _node_taints(avail)
    assert not taints, taints
    after = avail.pod("steady")
    assert after["status"]["phase"] == "Running" and condition(after, "Ready") == "True"
    # The same container all along: the sandbox kept running while its node was away.
    assert (after["status"]["containerStatuses"][0]["containerID"]
            == before["status"]["containerStatuses"][0]["containerID"])
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert _operator(meta) == operator
    avail.kubectl("delete", "pod", "steady", "--wait=false")


def test_status_lists_every_tenant_component(meta, avail):
    status = json.loads(meta.sk8s("status", "-o", "json").stdout)
    rows = {r["component"]: r for r in status["tenants"] if r["cluster"] == "default/avail"}
    assert set(rows) == {"kube-apiserver", "kube-controller-manager", "virtual-node"}, status["tenants"]
    for name, row in rows.items():
        assert row["pid"] == _pid(meta, "avail", name)
    assert rows["kube-apiserver"]["health"] == "healthy"
    assert rows["virtual-node"]["health"] == "healthy"
    assert rows["kube-controller-manager"]["health"] == "running"
    endpoint = meta.get("serverlesscluster", "avail", "default")["status"]["endpoint"]
    assert rows["kube-apiserver"]["endpoint"] == endpoint
    text = meta.sk8s("status").stdout
    lines = [ln for ln in text.splitlines() if ln.startswith("default/avail")]
    assert len(lines) == 3 and all(str(rows[ln.split()[2]]["pid"]) in ln for ln in lines), text
    # A dead component shows as down (the timer brings it back soon after).
    os.kill(rows["kube-controller-manager"]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        again = json.loads(meta.sk8s("status", "-o", "json").stdout)
        row = next(r for r in again["tenants"] if r["cluster"] == "default/avail"
                   and r["component"] == "kube-controller-manager")
        if row["health"] == "down" or row["pid"] != rows["kube-controller-manager"]["pid"]:
            break
        time.sleep(0.2)
    assert row["health"] == "down" or row["pid"] != rows["kube-controller-manager"]["pid"], row
    meta.wait_for("serverlesscluster", "avail", "default",
                  lambda sc: condition(sc, "Ready") == "True" and _alive_kcm(meta), timeout=60)


def _alive_kcm(meta) -> bool:
    status = json.loads(meta.sk8s("status", "-o", "json").stdout)
    return any(r["cluster"] == "default/avail" and r["component"] == "kube-controller-manager"
               and r["health"] == "running" for r in status["tenants"])
