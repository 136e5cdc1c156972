"""Lifecycle hooks and termination messages through plain kubectl against a tenant cluster:
postStart before the container counts as started, preStop before SIGTERM on deletion, a
failing postStart restarting the container, and termination messages (the file, and the
log tail with FallbackToLogsOnError) in `kubectl get pod -o yaml`."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from .conftest import IMAGE
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "hooks", quotas={"maxPods": 20})
    yield t
    delete_cluster(meta, "hooks")


def apply(t: Tenant, manifest: str) -> None:
    t.kubectl("apply", "-f", "-", input=manifest.replace("IMAGE", IMAGE))


def cstatus(pod: dict, name: str) -> dict:
    """The container's status; an empty one while the pod has none yet, so that a wait goes on."""
    return next((c for c in pod["status"].get("containerStatuses") or [] if c["name"] == name),
                {"name": name, "state": {}, "restartCount": 0, "ready": False})


def events(t: Tenant, pod: str) -> list[dict]:
    out = t.kubectl("get", "events", f"--field-selector=involvedObject.name={pod}", "-o", "json").stdout
    return json.loads(out)["items"]


def wait_event(t: Tenant, pod: str, reason: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in events(t, pod):
            if e["reason"] == reason:
                return e
        time.sleep(0.5)
    raise AssertionError(f"no {reason} event for {pod}: {[(e['reason'], e['message']) for e in events(t, pod)]}")


def test_post_start_runs_before_the_container_counts_as_started(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: poststart}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "until [ -f /tmp/hooked ]; do sleep 0.1; done; echo main saw $(cat /tmp/hooked); exec sleep 3600"]
    lifecycle:
      postStart:
        exec: {command: [sh, -c, "sleep 3; echo by-poststart > /tmp/hooked"]}
""")
    seen = []
    pod = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pod = tenant.pod("poststart")
        st = next(iter(pod["status"].get("containerStatuses") or []), {})
        seen.append((list(st.get("state") or {"none": 0})[0], st.get("started")))
        if "running" in (st.get("state") or {}):
            break
        time.sleep(0.2)
    assert "running" in cstatus(pod, "app")["state"], pod["status"]
    # The first report of it running finds the hook's file already written.
    assert tenant.kubectl("exec", "poststart", "--", "cat", "/tmp/hooked").stdout.strip() == "by-poststart"
    assert ("waiting", False) in seen  # while the hook ran, it was not started
    assert cstatus(pod, "app")["started"] is True
    deadline = time.monotonic() + 20
    while "main saw by-poststart" not in tenant.kubectl("logs", "poststart").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    tenant.kubectl("delete", "pod", "poststart", "--wait=false")


def test_pre_stop_runs_on_delete_before_sigterm(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: prestop}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "trap 'echo got-TERM; sleep 2; exit 0' TERM; echo up;
      while true; do if [ -f /tmp/prestop ]; then echo saw-prestop; rm /tmp/prestop; fi; sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "touch /tmp/prestop; sleep 3"]}
""")
    tenant.wait_pod("prestop", lambda p: cstatus(p, "app").get("ready") is True, timeout=90)
    t0 = time.monotonic()
    tenant.kubectl("delete", "pod", "prestop", "--wait=false")
    logs = ""
    while time.monotonic() - t0 < 30:
        proc = tenant.kubectl("logs", "prestop", check=False)
        if proc.returncode == 0:
            logs = proc.stdout
        if "got-TERM" in logs:
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    lines = logs.split()
    assert "saw-prestop" in lines and "got-TERM" in lines, logs
    assert lines.index("saw-prestop") < lines.index("got-TERM")  # the hook ran first
    assert took >= 2.5  # SIGTERM only after the hook's 3 seconds
    tenant.kubectl("wait", "--for=delete", "pod/prestop", "--timeout=60s", timeout=70)


def test_a_failing_post_start_kills_and_restarts_the_container(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    lifecycle:
      postStart:
        exec: {command: [sh, -c, "echo no-good; exit 7"]}
""")
    e = wait_event(tenant, "badhook", "FailedPostStartHook", timeout=90)
    assert "Exec lifecycle hook ([sh -c echo no-good; exit 7])" in e["message"] and "no-good" in e["message"]
    pod = tenant.wait_pod("badhook", lambda p: cstatus(p, "app")["restartCount"] >= 1, timeout=60)
    assert cstatus(pod, "app")["started"] is not True or cstatus(pod, "app")["restartCount"] >= 1
    tenant.kubectl("delete", "pod", "badhook", "--wait=false")


def test_termination_message_reaches_the_pod_status(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: termmsg}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "printf 'bye from app' > /dev/termination-log; exit 3"]
  - name: nonroot
    image: IMAGE
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /tmp/custom/message
    securityContext: {runAsUser: 1000, runAsGroup: 1000}
    command: [sh, -c, "printf 'written as 1000' > /tmp/custom/message"]
""")
    pod = tenant.wait_pod("termmsg", lambda p: cstatus(p, "app")["restartCount"] >= 1
                          and "terminated" in (cstatus(p, "nonroot").get("state") or {}), timeout=90)
    as_yaml = yaml.safe_load(tenant.kubectl("get", "pod", "termmsg", "-o", "yaml").stdout)
    assert cstatus(as_yaml, "app")["lastState"]["terminated"]["message"] == "bye from app"
    assert cstatus(as_yaml, "app")["lastState"]["terminated"]["exitCode"] == 3
    assert cstatus(pod, "nonroot")["state"]["terminated"]["message"] == "written as 1000"
    tenant.kubectl("delete", "pod", "termmsg", "--wait=false")


def test_fallback_to_logs_on_error_takes_the_log_tail(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: logtail}
spec:
  restartPolicy: Never
  containers:
  - name: failed
    image: IMAGE
    imagePullPolicy: IfNotPresent
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, "for i in $(seq 1 100); do echo line $i; done; exit 1"]
  - name: succeeded
    image: IMAGE
    imagePullPolicy: IfNotPresent
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, "echo only logs"]
""")
    tenant.wait_pod("logtail", lambda p: p["status"].get("phase") == "Failed", timeout=90)
    # The message may trail the phase by a moment under load (seen once in a full CI run;
    # not reproduced alone): wait for it a little rather than read it in the same status.
    pod = tenant.wait_pod("logtail", lambda p: "message" in cstatus(p, "failed")["state"]["terminated"], timeout=10)
    message = cstatus(pod, "failed")["state"]["terminated"]["message"]
    assert message.splitlines()[0] == "line 21" and message.splitlines()[-1] == "line 100"  # the last 80
    assert "message" not in cstatus(pod, "succeeded")["state"]["terminated"]  # exit 0: no fallback
    tenant.kubectl("delete", "pod", "logtail", "--wait=false")


def test_a_termination_message_path_that_cannot_be_mounted_is_refused_at_admission(tenant):
    proc = tenant.kubectl("run", "badpath", f"--image={IMAGE}", "--restart=Never", "--overrides=" + json.dumps(
        {"spec": {"containers": [{"name": "badpath", "image": IMAGE,
                                  "terminationMessagePath": "/dev/log:/etc/passwd"}]}}), check=False)
    assert proc.returncode != 0
    assert "spec.containers[0].terminationMessagePath: Invalid value" in proc.stderr, proc.stderr
