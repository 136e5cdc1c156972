"""Pod lifecycle through plain kubectl against a tenant cluster: several containers per pod,
init containers, restart policies with the kubelet's back-off, Jobs, and liveness,
readiness and startup probes. Pod specs are what a user writes for any cluster."""
from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest

from .conftest import IMAGE
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "lifecycle", quotas={"maxPods": 30})
    yield t
    delete_cluster(meta, "lifecycle")


def apply(t: Tenant, manifest: str) -> None:
    t.kubectl("apply", "-f", "-", input=manifest.replace("IMAGE", IMAGE))


def status_column(t: Tenant, name: str) -> str:
    """The STATUS column of `kubectl get pod`, as a user reads it."""
    out = t.kubectl("get", "pod", name, "--no-headers", check=False).stdout.split()
    return out[2] if len(out) > 2 else ""


def wait_status(t: Tenant, name: str, wanted: str, timeout: float = 60) -> set[str]:
    """Polls the STATUS column until it shows `wanted`; returns every value seen on the way."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        col = status_column(t, name)
        seen.add(col)
        if col == wanted:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"pod {name}: STATUS never became {wanted}; saw {sorted(seen)}; "
                         f"{json.dumps(t.pod(name).get('status'), indent=1)[:3000]}")


def cond(pod: dict, type_: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions") or [] if c["type"] == type_), None)


def cstatus(pod: dict, name: str, key: str = "containerStatuses") -> dict:
    """The container's status; an empty one while the pod has none yet (right after it is
    created, before the virtual node's first write), so that a wait goes on."""
    return next((c for c in pod["status"].get(key) or [] if c["name"] == name),
                {"name": name, "state": {}, "restartCount": 0, "ready": False})


def events(t: Tenant, pod: str) -> list[dict]:
    out = t.kubectl("get", "events", f"--field-selector=involvedObject.name={pod}", "-o", "json").stdout
    return json.loads(out)["items"]


def wait_event(t: Tenant, pod: str, reason: str, contains: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    evs: list[dict] = []
    while time.monotonic() < deadline:
        evs = events(t, pod)
        for e in evs:
            if e["reason"] == reason and contains in e["message"]:
                return e
        time.sleep(0.5)
    raise AssertionError(f"no {reason} event with {contains!r} on {pod}: "
                         f"{[(e['reason'], e['message']) for e in evs]}")


def wait_endpoint_ready(t: Tenant, service: str, ready: bool, timeout: float = 30) -> bool:
    """Whether the Service's EndpointSlice came to list its one endpoint with that readiness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slices = json.loads(t.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                                      "-o", "json").stdout)["items"]
        eps = [e for s in slices for e in s.get("endpoints") or []]
        if eps and all(e.get("conditions", {}).get("ready") is ready for e in eps):
            return True
        time.sleep(0.3)
    return False


def test_containers_of_a_pod_share_localhost_and_report_separately(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "mkdir -p /srv && echo hello from web > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
  - name: client
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "until timeout 3 wget -qO- http://localhost:8080/; do sleep 0.3; done; exec sleep 3600"]
""")
    pod = tenant.wait_pod("duo", lambda p: p["status"].get("phase") == "Running" and cond(p, "Ready") == "True")
    web, client = cstatus(pod, "web"), cstatus(pod, "client")
    assert "running" in web["state"] and "running" in client["state"]
    assert web["containerID"] != client["containerID"] and web["ready"] and client["ready"]
    deadline = time.monotonic() + 20
    logs = ""
    while time.monotonic() < deadline and "hello from web" not in logs:
        logs = tenant.kubectl("logs", "duo", "-c", "client", check=False).stdout
        time.sleep(0.3)
    assert "hello from web" in logs


def test_init_containers_run_in_order_before_the_containers(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  initContainers:
  - {name: first, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo first; sleep 2"]}
  - {name: second, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo second; sleep 2"]}
  containers:
  - {name: app, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
""")
    seen = wait_status(tenant, "inits", "Running", timeout=60)
    assert "Init:0/2" in seen and "Init:1/2" in seen, seen
    pod = tenant.pod("inits")
    first = cstatus(pod, "first", "initContainerStatuses")["state"]["terminated"]
    second = cstatus(pod, "second", "initContainerStatuses")["state"]["terminated"]
    app = cstatus(pod, "app")["state"]["running"]
    assert first["reason"] == second["reason"] == "Completed" and first["exitCode"] == second["exitCode"] == 0
    assert first["finishedAt"] <= second["startedAt"] <= second["finishedAt"] <= app["startedAt"]
    assert cond(pod, "Initialized") == "True" and cond(pod, "Ready") == "True"
    assert "first" in tenant.kubectl("logs", "inits", "-c", "first").stdout


def test_failing_init_container_under_never_fails_the_pod(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: init-never}
spec:
  restartPolicy: Never
  initContainers:
  - {name: check, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo no database; exit 3"]}
  containers:
  - {name: app, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
""")
    wait_status(tenant, "init-never", "Init:Error")
    pod = tenant.wait_pod("init-never", lambda p: p["status"].get("phase") == "Failed")
    term = cstatus(pod, "check", "initContainerStatuses")["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert cstatus(pod, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}
    init = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [check]"


def test_failing_init_container_crash_loops_under_always(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: init-loop}
spec:
  initContainers:
  - {name: check, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "exit 1"]}
  containers:
  - {name: app, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
""")
    wait_status(tenant, "init-loop", "Init:CrashLoopBackOff", timeout=40)
    pod = tenant.pod("init-loop")
    st = cstatus(pod, "check", "initContainerStatuses")
    assert st["restartCount"] >= 1 and st["lastState"]["terminated"]["exitCode"] == 1
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert pod["status"]["phase"] == "Pending"


def test_crash_loop_backs_off_exponentially(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - {name: crash, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo crashing; exit 2"]}
""")
    pod = tenant.wait_pod("crasher", lambda p: "waiting" in cstatus(p, "crash")["state"]
                          and cstatus(p, "crash")["state"]["waiting"]["reason"] == "CrashLoopBackOff", timeout=30)
    uid = pod["metadata"]["uid"]
    st = cstatus(pod, "crash")
    assert st["restartCount"] == 1
    assert st["state"]["waiting"]["message"] == f"back-off 10s restarting failed container=crash pod=crasher_default({uid})"
    assert st["lastState"]["terminated"]["exitCode"] == 2 and st["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running" and status_column(tenant, "crasher") == "CrashLoopBackOff"
    t0 = time.monotonic()
    pod = tenant.wait_pod("crasher", lambda p: cstatus(p, "crash")["restartCount"] == 2, timeout=20)
    waited = time.monotonic() - t0
    assert 5 < waited < 15, waited  # the 10 s back-off, counted from the crash
    pod = tenant.wait_pod("crasher", lambda p: "20s restarting" in
                          (cstatus(p, "crash")["state"].get("waiting") or {}).get("message", ""), timeout=10)
    wait_event(tenant, "crasher", "BackOff", f"Back-off restarting failed container crash in pod crasher_default({uid})")
    # Each run is a container of its own: the last run's output, and the one before it.
    assert tenant.kubectl("logs", "crasher").stdout.splitlines() == ["crashing"]
    assert tenant.kubectl("logs", "crasher", "--previous").stdout.splitlines() == ["crashing"]


STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) (.*)$")  # RFC 3339, a space


def test_logs_options_timestamps_since_and_limit_are_honoured(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  containers:
  - {name: talk, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo early; sleep 6; echo late; sleep 3600"]}
""")
    deadline, out = time.monotonic() + 60, ""
    while "late" not in out and time.monotonic() < deadline:
        out = tenant.kubectl("logs", "chatty", check=False).stdout
        time.sleep(0.2)
    assert out.splitlines() == ["early", "late"]
    # "late" is under a second or two old here, "early" six seconds older.
    assert tenant.kubectl("logs", "chatty", "--since=4s").stdout.splitlines() == ["late"]
    stamped = [STAMP.match(ln) for ln in tenant.kubectl("logs", "chatty", "--timestamps").stdout.splitlines()]
    assert all(stamped) and [m.group(4) for m in stamped] == ["early", "late"], stamped
    early, late = (dt.datetime.fromisoformat(m.group(1)) for m in stamped)
    assert 5 < (late - early).total_seconds() < 30
    assert abs((dt.datetime.now(dt.timezone.utc) - late).total_seconds()) < 30  # stamped by this host's clock
    # --since-time (RFC 3339, whole seconds as kubectl sends it): from late's second on.
    since = late.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tenant.kubectl("logs", "chatty", f"--since-time={since}").stdout.splitlines() == ["late"]
    assert tenant.kubectl("logs", "chatty", "--since-time=2000-01-01T00:00:00Z").stdout.splitlines() == ["early", "late"]
    assert tenant.kubectl("logs", "chatty", "--limit-bytes=3").stdout == "ear"
    assert tenant.kubectl("logs", "chatty", "--limit-bytes=8", "--tail=1").stdout == "late\n"
    assert len(tenant.kubectl("logs", "chatty", "--limit-bytes=12", "--timestamps").stdout) == 12
    tenant.kubectl("delete", "pod", "chatty", "--wait=false")


def test_job_with_never_fails(tenant):
    apply(tenant, """
apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo giving up; exit 4"]}
""")
    tenant.kubectl("wait", "--for=condition=Failed", "job/fails", "--timeout=60s")
    pods = json.loads(tenant.kubectl("get", "pods", "-l", "job-name=fails", "-o", "json").stdout)["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Failed"
    st = cstatus(pods[0], "work")
    assert st["restartCount"] == 0 and st["state"]["terminated"]["exitCode"] == 4


def test_job_with_on_failure_restarts_then_completes(tenant):
    # The first run fails; the restarted container (a new one: /tmp is fresh) finds the
    # marker it left in its emptyDir volume and succeeds.
    apply(tenant, """
apiVersion: batch/v1
kind: Job
metadata: {name: retries}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: work
        image: IMAGE
        imagePullPolicy: IfNotPresent
        volumeMounts: [{name: scratch, mountPath: /data}]
        command: [sh, -c, "if [ -f /data/tried ]; then [ -f /tmp/tried ] && echo stale /tmp || echo fresh /tmp;
                           else touch /data/tried /tmp/tried; exit 1; fi"]
""")
    tenant.kubectl("wait", "--for=condition=Complete", "job/retries", "--timeout=60s")
    pods = json.loads(tenant.kubectl("get", "pods", "-l", "job-name=retries", "-o", "json").stdout)["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
    st = cstatus(pods[0], "work")
    assert st["restartCount"] == 1 and st["state"]["terminated"]["exitCode"] == 0
    assert st["lastState"]["terminated"]["exitCode"] == 1
    assert tenant.kubectl("logs", pods[0]["metadata"]["name"]).stdout.strip() == "fresh /tmp"


def test_job_with_a_sidecar_completes(tenant):
    # A native sidecar (an init container with restartPolicy Always): started before the
    # container, running next to it, stopped once the Job's container is done.
    apply(tenant, """
apiVersion: batch/v1
kind: Job
metadata: {name: with-sidecar}
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      initContainers:
      - {name: proxy, image: IMAGE, imagePullPolicy: IfNotPresent, restartPolicy: Always,
         command: [sh, -c, "mkdir -p /srv && echo proxied > /srv/index.html && exec httpd -f -p 9000 -h /srv"]}
      containers:
      - {name: work, image: IMAGE, imagePullPolicy: IfNotPresent,
         command: [sh, -c, "until timeout 3 wget -qO- http://localhost:9000/; do sleep 0.3; done"]}
""")
    tenant.kubectl("wait", "--for=condition=Complete", "job/with-sidecar", "--timeout=60s")
    pod = json.loads(tenant.kubectl("get", "pods", "-l", "job-name=with-sidecar", "-o", "json").stdout)["items"][0]
    pod = tenant.wait_pod(pod["metadata"]["name"], lambda p: p["status"].get("phase") == "Succeeded" and "terminated"
                          in cstatus(p, "proxy", "initContainerStatuses")["state"], timeout=30)
    work = cstatus(pod, "work")["state"]["terminated"]
    assert work["exitCode"] == 0
    proxy = cstatus(pod, "proxy", "initContainerStatuses")
    assert proxy["state"]["terminated"]["startedAt"] <= work["startedAt"]
    assert "proxied" in tenant.kubectl("logs", pod["metadata"]["name"], "-c", "work").stdout


def test_liveness_failure_restarts_the_container(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
  terminationGracePeriodSeconds: 1
""")
    pod = tenant.wait_pod("live", lambda p: cstatus(p, "app")["restartCount"] >= 1, timeout=30)
    st = cstatus(pod, "app")
    assert st["lastState"]["terminated"]["reason"] in ("Error", "Completed")
    wait_event(tenant, "live", "Unhealthy", "Liveness probe failed: cat: can't open '/tmp/healthy'")
    wait_event(tenant, "live", "Killing", "Container app failed liveness probe, will be restarted")
    assert "Liveness probe failed" in tenant.kubectl("describe", "pod", "live").stdout


def test_readiness_probe_gates_ready(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: ready-flip, labels: {app: flip}}
spec:
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "mkdir -p /srv && touch /srv/ready && httpd -p 8080 -h /srv && sleep 5 && rm /srv/ready && exec sleep 3600"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
      failureThreshold: 1
""")
    tenant.kubectl("expose", "pod", "ready-flip", "--name=flip", "--port=80", "--target-port=8080")
    pod = tenant.wait_pod("ready-flip", lambda p: cond(p, "Ready") == "True", timeout=30)
    assert cstatus(pod, "web")["ready"] is True
    assert wait_endpoint_ready(tenant, "flip", True)
    pod = tenant.wait_pod("ready-flip", lambda p: cond(p, "Ready") == "False", timeout=30)
    assert wait_endpoint_ready(tenant, "flip", False)  # an unready pod gets no traffic
    st = cstatus(pod, "web")
    assert st["ready"] is False and "running" in st["state"] and st["restartCount"] == 0
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady" and ready["message"] == "containers with unready status: [web]"
    wait_event(tenant, "ready-flip", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404")


def test_startup_probe_holds_off_liveness_and_readiness(tenant):
    # Liveness would kill the container at once if it ran before the startup probe passed.
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: slow-start}
spec:
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "sleep 4; touch /tmp/up; mkdir -p /srv; exec httpd -f -p 8081 -h /srv"]
    startupProbe:
      tcpSocket: {port: 8081}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: [cat, /tmp/up]}
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
""")
    pod = tenant.wait_pod("slow-start", lambda p: "running" in cstatus(p, "app")["state"], timeout=30)
    st = cstatus(pod, "app")
    assert st["started"] is False and st["ready"] is False
    pod = tenant.wait_pod("slow-start", lambda p: cond(p, "Ready") == "True", timeout=30)
    st = cstatus(pod, "app")
    assert st["started"] is True and st["ready"] is True and st["restartCount"] == 0
    assert not [e for e in events(tenant, "slow-start") if e["reason"] == "Killing"]


def test_a_new_image_restarts_the_container_with_it_as_the_kubelet_does(meta, tenant):
    """`kubectl set image` on a pod: the container is killed ("definition changed") and runs
    the new image, restartCount 1, even under restartPolicy Never; the pod stays Running."""
    other = IMAGE.rsplit(":", 1)[0] + ":e2e-swap"
    assert meta.podman("tag", IMAGE, other).returncode == 0  # the same root file system, another name
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: swap}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo started; exec sleep 3600"]}
  - {name: side, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
""")
    tenant.wait_pod("swap", lambda p: p["status"].get("phase") == "Running", timeout=120)
    tenant.kubectl("set", "image", "pod/swap", f"app={other}")
    pod = tenant.wait_pod("swap", lambda p: cstatus(p, "app")["restartCount"] == 1
                          and "running" in cstatus(p, "app")["state"], timeout=60)
    app, side = cstatus(pod, "app"), cstatus(pod, "side")
    assert app["image"] == other and app["lastState"]["terminated"]["exitCode"] in (137, 143), app
    assert side["restartCount"] == 0 and side["image"] == IMAGE
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["generation"] == 2 and pod["status"]["observedGeneration"] == 2
    wait_event(tenant, "swap", "Killing", "Container app definition changed, will be restarted")
    assert tenant.kubectl("logs", "swap", "-c", "app", "--previous").stdout.strip() == "started"
    tenant.kubectl("delete", "pod", "swap", "--wait=false")


@pytest.mark.long  # chaos (the operator killed): make test-long
def test_restart_count_survives_an_operator_restart(meta, tenant):
    """The back-off, restart count and last termination live on in a restarted operator."""
    import os
    import signal
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: steady-crasher}
spec:
  containers:
  - {name: crash, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, "sleep 1; exit 5"]}
""")
    tenant.wait_pod("steady-crasher", lambda p: cstatus(p, "crash")["restartCount"] == 1
                    and "CrashLoopBackOff" in json.dumps(cstatus(p, "crash")["state"]), timeout=30)
    pid = meta.state()["components"]["sandboxpod-operator"]["pid"]
    os.kill(pid, signal.SIGKILL)
    pod = tenant.wait_pod("steady-crasher", lambda p: cstatus(p, "crash")["restartCount"] >= 2, timeout=60)
    assert meta.state()["components"]["sandboxpod-operator"]["pid"] != pid
    st = cstatus(pod, "crash")
    assert st["restartCount"] == 2 and st["lastState"]["terminated"]["exitCode"] == 5
    pod = tenant.wait_pod("steady-crasher", lambda p: "20s restarting" in json.dumps(cstatus(p, "crash")["state"]),
                          timeout=30)
