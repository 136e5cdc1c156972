"""Sleep mode end to end: an idle tenant's control plane stops, its pods and load balancer
keep serving, and plain kubectl wakes it without an error."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from operators.embedded.processes import ProcessSet

from .conftest import IMAGE, until
from .tenant import cluster_uid, delete_cluster, make_cluster, plane_dir

pytestmark = pytest.mark.e2e
PAGE = "Welcome to sk8s"
NAME = "sleepy"
PLANE = ("kube-apiserver", "kube-controller-manager", "virtual-node")


@pytest.fixture(scope="module")
def sleepy(meta):
    t = make_cluster(meta, NAME, sleepWhenIdle=True, sleepAfterIdleSeconds=15)
    yield t
    delete_cluster(meta, NAME)


def cluster(meta) -> dict:
    return meta.get("serverlesscluster", NAME, "default")


def cond(sc: dict, type_: str) -> dict:
    return next(c for c in sc["status"]["conditions"] if c["type"] == type_)


def http_get(url: str, timeout: float = 3) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def page(url: str) -> str:
    """The page, or "" while the new load balancer's rules are not in place yet."""
    try:
        return http_get(url)
    except OSError:
        return ""


def running(meta) -> dict[str, bool]:
    procs = ProcessSet(plane_dir(meta, cluster_uid(meta, NAME)))
    return {name: procs.running(name) for name in PLANE}


def events(meta, reason: str) -> list[dict]:
    out = meta.kubectl("get", "events", "-n", "default", "-o", "json",
                       f"--field-selector=involvedObject.name={NAME},reason={reason}").stdout
    return json.loads(out)["items"]


def asleep(meta, timeout: float = 90) -> dict:
    until(lambda: cluster(meta)["status"].get("phase") == "Sleeping", timeout, "the tenant to sleep")
    until(lambda: not any(running(meta).values()), 15, "the plane's processes to stop")
    return cluster(meta)


def test_admission_names_the_idle_time_field(meta):
    bad = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": "too-eager"},
           "spec": {"sleepWhenIdle": True, "sleepAfterIdleSeconds": 1}}
    proc = meta.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "sleepAfterIdleSeconds" in proc.stderr


def test_idle_tenant_sleeps_keeps_serving_and_wakes_on_kubectl(meta, sleepy):
    sleepy.kubectl("create", "deployment", "web", f"--image={IMAGE}")
    sleepy.kubectl("expose", "deployment", "web", "--port=80", "--target-port=80", "--type=LoadBalancer")
    sleepy.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    ip = until(lambda: (json.loads(sleepy.kubectl("get", "svc", "web", "-o", "json").stdout)["status"]
                        .get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip"), 60, "an EXTERNAL-IP")
    assert PAGE in until(lambda: page(f"http://{ip}/"), 30, "the page")

    sc = asleep(meta)
    assert cond(sc, "Ready")["status"] == "True" and cond(sc, "Ready")["reason"] == "Sleeping"
    assert cond(sc, "ControlPlaneReady")["status"] == "False"
    assert events(meta, "Sleeping"), "no Sleeping event"

    # Pods and their load balancer serve while it sleeps, and serving them wakes nothing; nor
    # does the operator's health timer (a tick is 10 s), nor `sk8s status`.
    for _ in range(5):
        assert PAGE in http_get(f"http://{ip}/")
    assert "asleep" in meta.sk8s("status").stdout
    time.sleep(11)
    assert cluster(meta)["status"]["phase"] == "Sleeping"
    assert not any(running(meta).values())

    t0 = time.monotonic()
    out = sleepy.kubectl("get", "pods", "-o", "name", timeout=60).stdout  # fails on any client error
    took = time.monotonic() - t0
    assert "pod/web-" in out, out
    assert took < 30, f"kubectl waited {took:.1f}s for the wake"
    assert running(meta)["kube-apiserver"]
    until(lambda: all(running(meta).values()), 30, "the whole plane to run again")
    until(lambda: cluster(meta)["status"]["phase"] == "Ready", 60, "phase Ready after the wake")
    woken = events(meta, "Woken")
    assert woken and "a request to its endpoint" in woken[-1]["message"], woken
    assert PAGE in http_get(f"http://{ip}/")


def test_sleep_and_wake_commands(meta, sleepy):
    until(lambda: cluster(meta)["status"].get("phase") in ("Ready", "Sleeping"), 60, "a settled phase")
    meta.sk8s("cluster", "wake", NAME)  # whichever it was: awake now
    assert cluster(meta)["status"]["phase"] == "Ready" and running(meta)["kube-apiserver"]
    out = meta.sk8s("cluster", "sleep", NAME).stdout
    assert "is Sleeping" in out
    asleep(meta, timeout=30)
    assert "power.sk8s.io/request" not in (cluster(meta)["metadata"].get("annotations") or {})
    out = meta.sk8s("cluster", "wake", NAME).stdout
    assert "is Ready" in out
    assert running(meta)["kube-apiserver"]
    assert "kube-system" in sleepy.kubectl("get", "ns").stdout


def test_invalid_power_request_is_refused_with_an_event(meta, sleepy):
    meta.kubectl("annotate", "--overwrite", f"serverlesscluster/{NAME}", "power.sk8s.io/request=hibernate")
    until(lambda: events(meta, "InvalidPowerRequest"), 30, "an InvalidPowerRequest event")
    until(lambda: "power.sk8s.io/request" not in (cluster(meta)["metadata"].get("annotations") or {}), 30,
          "the annotation to be removed")


def _operator_pid(meta) -> int | None:
    out = subprocess.run(["pgrep", "-f", "operators.serverlesscluster.operator"], capture_output=True, text=True)
    for pid in map(int, out.stdout.split()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"SK8S_HOME={meta.home}".encode() in f.read().split(b"\0"):
                    return pid
        except OSError:
            continue
    return None


def test_a_sleeping_tenant_stays_asleep_across_an_operator_restart_and_still_wakes(meta, sleepy):
    meta.sk8s("cluster", "sleep", NAME)
    asleep(meta, timeout=30)
    old = _operator_pid(meta)
    assert old, "no serverlesscluster operator of this home"
    os.kill(old, signal.SIGKILL)
    until(lambda: _operator_pid(meta) not in (None, old), 60, "the supervisor to restart the operator")
    time.sleep(5)  # its resume handlers have run
    assert cluster(meta)["status"]["phase"] == "Sleeping"
    assert not any(running(meta).values())
    out = until(lambda: sleepy.kubectl("get", "deployments", "-o", "name", check=False, timeout=60).stdout, 60,
                "kubectl through the new operator's wake listener")
    assert "deployment.apps/web" in out
    until(lambda: cluster(meta)["status"]["phase"] == "Ready", 60, "phase Ready")
