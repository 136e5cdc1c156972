"""Pod fields that a kubelet honours, through plain kubectl against a tenant cluster:
activeDeadlineSeconds (also shortened on a running pod), status.observedGeneration, the
kubelet's Pulled/Created/Started events, subPathExpr and shareProcessNamespace."""
from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from .conftest import IMAGE
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "fields", quotas={"maxPods": 20})
    yield t
    delete_cluster(meta, "fields")


def apply(t: Tenant, manifest: str) -> None:
    t.kubectl("apply", "-f", "-", input=manifest.replace("IMAGE", IMAGE))


def events(t: Tenant, pod: str) -> list[dict]:
    out = t.kubectl("get", "events", f"--field-selector=involvedObject.name={pod}", "-o", "json").stdout
    return json.loads(out)["items"]


def wait_events(t: Tenant, pod: str, reasons: set[str], timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = events(t, pod)
        if reasons <= {e["reason"] for e in seen}:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"not all of {reasons} for {pod}: {[(e['reason'], e['message']) for e in seen]}")


def sleeper(name: str, extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
{extra}  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
"""


def failed(pod: dict) -> bool:
    return pod["status"].get("phase") == "Failed"


def assert_deadline_exceeded(t: Tenant, name: str, pod: dict) -> None:
    st = pod["status"]
    assert st["reason"] == "DeadlineExceeded" and st["message"] == DEADLINE_MESSAGE, st
    assert "terminated" in st["containerStatuses"][0]["state"], st
    (ev,) = [e for e in wait_events(t, name, {"DeadlineExceeded"}) if e["reason"] == "DeadlineExceeded"]
    assert ev["type"] == "Normal" and ev["message"] == DEADLINE_MESSAGE


def test_a_pod_past_its_active_deadline_fails(tenant):
    apply(tenant, sleeper("deadline", "  activeDeadlineSeconds: 5\n"))
    pod = tenant.wait_pod("deadline", failed, timeout=90)
    assert_deadline_exceeded(tenant, "deadline", pod)
    # counted from the pod's start, as the kubelet counts it
    start = datetime.fromisoformat(pod["status"]["startTime"].replace("Z", "+00:00"))
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    ended = datetime.fromisoformat(term["finishedAt"].replace("Z", "+00:00"))
    assert 5 <= (ended - start).total_seconds() < 30, (start, ended)


def test_a_running_pods_deadline_shortened_kills_it_and_observed_generation_follows(tenant):
    apply(tenant, sleeper("shortened", "  activeDeadlineSeconds: 3600\n"))
    pod = tenant.wait_pod("shortened", lambda p: p["status"].get("phase") == "Running", timeout=90)
    assert pod["metadata"]["generation"] == 1
    assert pod["status"]["observedGeneration"] == 1
    tenant.kubectl("patch", "pod", "shortened", "-p", '{"spec": {"activeDeadlineSeconds": 4}}')
    pod = tenant.wait_pod("shortened", failed, timeout=60)
    assert_deadline_exceeded(tenant, "shortened", pod)
    assert pod["metadata"]["generation"] == 2
    assert pod["status"]["observedGeneration"] == 2
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    for t in ("Ready", "ContainersReady", "Initialized", "PodReadyToStartContainers"):
        assert conds[t]["observedGeneration"] == 2, conds[t]


def test_observed_generation_follows_an_update_of_a_running_pod(tenant):
    apply(tenant, sleeper("generation", "  activeDeadlineSeconds: 3600\n"))
    pod = tenant.wait_pod("generation", lambda p: p["status"].get("phase") == "Running", timeout=90)
    assert pod["status"]["observedGeneration"] == 1
    tenant.kubectl("patch", "pod", "generation", "-p", '{"spec": {"activeDeadlineSeconds": 3000}}')
    pod = tenant.wait_pod("generation", lambda p: p["status"].get("observedGeneration") == 2, timeout=30)
    assert pod["metadata"]["generation"] == 2 and pod["status"]["phase"] == "Running"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 2


def test_the_kubelets_container_events_reach_the_tenant_in_order(tenant):
    apply(tenant, sleeper("events"))
    tenant.wait_pod("events", lambda p: p["status"].get("phase") == "Running", timeout=90)
    seen = wait_events(tenant, "events", {"Pulled", "Created", "Started"})
    by = {e["reason"]: e for e in seen}
    assert by["Pulled"]["message"] == \
        f'Container image "{IMAGE}" already present on machine and can be accessed by the pod'
    assert by["Created"]["message"] == "Container created" and by["Started"]["message"] == "Container started"
    for reason in ("Pulled", "Created", "Started"):
        e = by[reason]
        assert e["type"] == "Normal" and e["source"]["component"] == "kubelet", e
        assert e["involvedObject"]["fieldPath"] == "spec.containers{app}", e
    times = [by[r]["firstTimestamp"] for r in ("Pulled", "Created", "Started")]
    assert times == sorted(times), times
    if "Scheduled" in by:
        assert by["Scheduled"]["firstTimestamp"] <= times[0]


def test_subpathexpr_mounts_the_directory_its_pod_name_expands_to(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: subexpr}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo written-by-$POD_NAME > /mine/f; exec sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: data, mountPath: /all}
    - {name: data, mountPath: /mine, subPathExpr: "logs/$(POD_NAME)"}
""")
    tenant.wait_pod("subexpr", lambda p: p["status"].get("phase") == "Running", timeout=90)
    deadline = time.monotonic() + 20
    out = None
    while time.monotonic() < deadline:
        out = tenant.kubectl("exec", "subexpr", "--", "cat", "/all/logs/subexpr/f", check=False)
        if out.returncode == 0:
            break
        time.sleep(0.5)
    assert out is not None and out.stdout.strip() == "written-by-subexpr", out


def test_a_subpathexpr_that_climbs_out_is_a_create_container_config_error(tenant):
    apply(tenant, """
apiVersion: v1
kind: Pod
metadata: {name: subexpr-bad}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: app
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    env: [{name: UP, value: "../.."}]
    volumeMounts: [{name: data, mountPath: /mine, subPathExpr: "x/$(UP)"}]
""")
    message = "unable to provision SubPath `x/../..`: must not contain '..'"
    pod = tenant.wait_pod("subexpr-bad", lambda p: "waiting" in (
        (p["status"].get("containerStatuses") or [{}])[0].get("state") or {}) and p["status"][
        "containerStatuses"][0]["state"]["waiting"].get("reason") == "CreateContainerConfigError", timeout=90)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == message
    assert pod["status"]["phase"] == "Pending"
    failed_events = [e for e in wait_events(tenant, "subexpr-bad", {"Failed"}) if e["reason"] == "Failed"]
    assert any(e["message"] == f"Error: {message}" for e in failed_events), failed_events


def two_sleepers(name: str, share: bool) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: {str(share).lower()}
  containers:
  - {{name: a, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3601"]}}
  - {{name: b, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3602"]}}
"""


def test_share_process_namespace_lets_containers_see_each_other(tenant):
    apply(tenant, two_sleepers("sharepid", True))
    apply(tenant, two_sleepers("ownpid", False))
    for name in ("sharepid", "ownpid"):
        tenant.wait_pod(name, lambda p: p["status"].get("phase") == "Running", timeout=90)
    shared = tenant.kubectl("exec", "sharepid", "-c", "b", "--", "ps", "-o", "pid,args").stdout
    assert "sleep 3601" in shared and "sleep 3602" in shared, shared
    first = [ln.split(None, 1) for ln in shared.splitlines()[1:] if ln.split()[0] == "1"]
    assert first and "sleep" not in first[0][1], shared  # the pod's infra process is PID 1, as pause
    # and one container can signal the other, as on a kubelet
    (pid,) = [ln.split()[0] for ln in shared.splitlines()[1:] if ln.split(None, 1)[1:] == ["sleep 3601"]]
    tenant.kubectl("exec", "sharepid", "-c", "b", "--", "kill", pid)
    pod = tenant.wait_pod("sharepid", lambda p: any(
        c["name"] == "a" and c.get("restartCount", 0) >= 1 for c in p["status"].get("containerStatuses") or []),
        timeout=60)
    assert pod["status"]["phase"] == "Running"
    alone = tenant.kubectl("exec", "ownpid", "-c", "b", "--", "ps", "-o", "pid,args").stdout
    assert "sleep 3601" not in alone and "sleep 3602" in alone, alone
