"""SandboxPod end to end: kubectl apply -> a real podman sandbox -> status, logs, deletion."""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request

import pytest

from .conftest import condition, phase, sandboxpod

pytestmark = pytest.mark.e2e


def containers_of(meta, uid: str) -> list[dict]:
    out = meta.podman("ps", "--all", "--format=json", f"--filter=label=sk8s.io/uid={uid}")
    return json.loads(out.stdout or "[]")


def pods_named(meta, uid: str) -> list[str]:
    out = meta.podman("pod", "ps", "--format=json", f"--filter=name=sk8s-{uid}")
    return [p["Name"] for p in json.loads(out.stdout or "[]")]


def test_web_sandbox_runs_and_answers_on_its_pod_ip(meta, namespace):
    meta.apply(sandboxpod("web", [{
        "name": "httpd", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"containerPort": 8080}],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
    }]), namespace)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/web", "-n", namespace, "--timeout=60s")
    obj = meta.get("sandboxpod", "web", namespace)
    st = obj["status"]
    assert st["phase"] == "Running" and st["provider"] == "local" and st["instanceID"]
    assert st["startTime"] and st["containerStatuses"][0]["ready"] is True
    assert {c["type"] for c in st["conditions"]} >= {"Scheduled", "ContainersReady", "Ready"}
    ip = st["podIP"]
    body = b""
    for _ in range(50):  # httpd binds a moment after the container starts
        try:
            body = urllib.request.urlopen(f"http://{ip}:8080/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert b"Welcome to sk8s" in body

    # cgroup limits from resources
    (c,) = containers_of(meta, obj["metadata"]["uid"])
    inspect = json.loads(meta.podman("inspect", c["Id"]).stdout)[0]
    assert inspect["HostConfig"]["Memory"] == 64 * 2**20
    assert inspect["HostConfig"]["NanoCpus"] == 500_000_000

    listing = meta.kubectl("get", "sandboxpods", "-n", namespace).stdout
    assert "Running" in listing and ip in listing
    assert "sandboxpod.sk8s.io/web" in meta.kubectl("get", "sk8s", "-n", namespace, "-o", "name").stdout


def test_logs_of_a_sandbox(meta, namespace):
    meta.apply(sandboxpod("talker", [{"name": "main", "command": ["sh", "-c",
               "echo hello-from-sandbox; echo to-stderr >&2; sleep 3600"]}]), namespace)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/talker", "-n", namespace, "--timeout=60s")
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline and "to-stderr" not in out:
        out = meta.sk8s("sandbox-logs", "talker", "-n", namespace).stdout
        time.sleep(0.2)
    assert "hello-from-sandbox" in out and "to-stderr" in out
    bad = meta.sk8s("sandbox-logs", "talker", "-n", namespace, "-c", "nope", check=False)
    assert bad.returncode != 0 and "choose one of: main" in bad.stderr


def _exited_within(obj: dict, seconds: float) -> float:
    term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    finished = dt.datetime.strptime(term["finishedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    lag = (dt.datetime.now(dt.timezone.utc) - finished).total_seconds()
    assert lag < seconds + 1, f"status followed the exit after {lag:.1f}s"  # finishedAt has 1 s resolution
    return lag


@pytest.mark.parametrize("policy,code,expected", [("Never", 3, "Failed"), ("Never", 0, "Succeeded"),
                                                  ("OnFailure", 0, "Succeeded")])
def test_exit_turns_into_phase(meta, namespace, policy, code, expected):
    name = f"exit-{policy.lower()}-{code}"
    meta.apply(sandboxpod(name, [{"name": "main", "command": ["sh", "-c", f"sleep 3; exit {code}"]}],
                          restartPolicy=policy), namespace)
    # Running lasts 3 s: a loaded machine may report the start and the exit in one status.
    meta.wait_for("sandboxpod", name, namespace, lambda o: phase(o) in ("Running", expected), timeout=60,
                  interval=0.05)
    obj = meta.wait_for("sandboxpod", name, namespace, lambda o: phase(o) == expected, timeout=10, interval=0.05)
    assert obj["status"]["containerStatuses"][0]["state"]["terminated"].get("startedAt")
    _exited_within(obj, 2)
    cs = obj["status"]["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == code and cs["restartCount"] == 0
    assert condition(obj, "Ready") == "False"


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_failing_container_is_restarted(meta, namespace, policy):
    name = f"crash-{policy.lower()}"
    meta.apply(sandboxpod(name, [{"name": "main", "command": ["sh", "-c", "sleep 1; exit 7"]}],
                          restartPolicy=policy), namespace)
    obj = meta.wait_for("sandboxpod", name, namespace,
                        lambda o: ((o.get("status") or {}).get("containerStatuses") or [{}])[0].get(
                            "restartCount", 0) >= 2, timeout=30)
    assert phase(obj) == "Running"
    last = obj["status"]["containerStatuses"][0].get("lastState", {}).get("terminated")
    assert last is None or last["exitCode"] == 7


def test_delete_leaves_no_container(meta, namespace):
    meta.apply(sandboxpod("doomed", [{"name": "a", "command": ["sleep", "3600"]},
                                     {"name": "b", "command": ["sleep", "3600"]}]), namespace)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/doomed", "-n", namespace, "--timeout=60s")
    uid = meta.get("sandboxpod", "doomed", namespace)["metadata"]["uid"]
    assert len(containers_of(meta, uid)) == 2 and pods_named(meta, uid)
    meta.kubectl("delete", "sandboxpod", "doomed", "-n", namespace, "--timeout=60s")
    assert containers_of(meta, uid) == [] and pods_named(meta, uid) == []


def test_missing_image_reports_pull_error_and_deletes_cleanly(meta, namespace):
    meta.apply(sandboxpod("noimage", [{"name": "a", "image": "localhost/does-not-exist:1",
                                       "imagePullPolicy": "IfNotPresent"}]), namespace)
    obj = meta.wait_for("sandboxpod", "noimage", namespace,
                        lambda o: (o.get("status") or {}).get("reason") in ("ErrImagePull", "ImagePullBackOff"))
    assert phase(obj) == "Pending"
    waiting = obj["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff") and "does-not-exist" in waiting["message"]
    events = meta.kubectl("get", "events", "-n", namespace, "--field-selector",
                          "involvedObject.name=noimage", "-o", "json").stdout
    assert any(e["reason"] == "Failed" for e in json.loads(events)["items"])
    uid = obj["metadata"]["uid"]
    meta.kubectl("delete", "sandboxpod", "noimage", "-n", namespace, "--timeout=60s")
    assert containers_of(meta, uid) == []
    assert meta.sk8s("status").returncode == 0  # nothing crashed


def test_operator_killed_mid_create_leaves_exactly_one_sandbox(meta, namespace):
    import os
    import signal
    pid = meta.state()["components"]["sandboxpod-operator"]["pid"]
    spec = sandboxpod("survivor", [{"name": n, "command": ["sleep", "3600"]} for n in ("a", "b", "c", "d")])
    meta.apply(spec, namespace)
    uid = meta.get("sandboxpod", "survivor", namespace)["metadata"]["uid"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not containers_of(meta, uid):
        time.sleep(0.02)
    assert 0 < len(containers_of(meta, uid)) < 4, "operator should be mid-create"
    os.kill(pid, signal.SIGKILL)
    # The supervisor restarts the operator; it must resume, not duplicate.
    obj = meta.wait_for("sandboxpod", "survivor", namespace, lambda o: condition(o, "Ready") == "True", timeout=60)
    assert meta.state()["components"]["sandboxpod-operator"]["pid"] != pid
    assert sorted(c["Labels"]["sk8s.io/container"] for c in containers_of(meta, uid)) == ["a", "b", "c", "d"]
    assert pods_named(meta, uid) == [f"sk8s-{uid}"]
    assert len(obj["status"]["containerStatuses"]) == 4


def test_deleting_the_namespace_removes_its_sandboxes(meta):
    ns = "e2e-nsdel"
    meta.kubectl("create", "namespace", ns)
    meta.apply(sandboxpod("inside", [{"name": "a", "command": ["sleep", "3600"]}]), ns)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/inside", "-n", ns, "--timeout=60s")
    uid = meta.get("sandboxpod", "inside", ns)["metadata"]["uid"]
    # The namespace controller (kube-controller-manager) deletes the SandboxPod, the operator's
    # finalizer removes the sandbox, and only then does the namespace go away.
    meta.kubectl("delete", "namespace", ns, "--timeout=90s")
    assert meta.kubectl("get", "namespace", ns, check=False).returncode != 0
    assert containers_of(meta, uid) == []
