"""The SandboxPod operator with the metapod provider (SK8S_PROVIDER=metapod), as a process
of its own against the kind bed's real apiserver and nodes: a SandboxPod becomes a Pod the
meta kubelet runs, its status (Running, ready, the pod IP, the provider) is pushed from the
provider's watch, the meta kubelet's container events are relayed onto the SandboxPod (for
the virtual node to mirror), its content volume comes from the volume-content Secret the
virtual node would write, and deleting the SandboxPod deletes the Pod before the finalizer goes."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from operators.volumecontent import build_content_secret
from tests.kind.conftest import REPO, KindCluster

pytestmark = pytest.mark.kind
PAGE = b"from the volume-content Secret\n"


@pytest.fixture
def operator(kind_cluster: KindCluster, tmp_path: Path):
    proc = kind_cluster.kubectl("apply", "-f", str(REPO / "crds/sk8s.io_sandboxpods.yaml"))
    assert proc.returncode == 0, proc.stderr
    kind_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/sandboxpods.sk8s.io")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SK8S_") and k != "KUBERNETES_SERVICE_HOST"}
    env.update(KUBECONFIG=kind_cluster.kubeconfig, SK8S_PROVIDER="metapod", SK8S_HOME=str(tmp_path / "home"))
    log = open(tmp_path / "operator.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "-m",
                             "operators.sandboxpod.operator"], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)
    yield tmp_path / "operator.log"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def wait_json(kind: KindCluster, args: list[str], predicate, what: str, log: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        proc = kind.kubectl(*args, "-o", "json")
        if proc.returncode == 0:
            last = json.loads(proc.stdout)
            if predicate(last):
                return last
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last status: {(last or {}).get('status')}\n"
                         f"operator log:\n{log.read_text()[-4000:]}")


def relayed_start(event: dict) -> bool:
    """The kubelet's Started, relayed (not the operator's own "sandbox ... started" Event)."""
    return event["reason"] == "Started" and event["source"].get("component") == "sk8s-sandbox-kubelet"


def test_the_operator_runs_a_sandboxpod_as_a_pod_and_reports_it(kind_cluster: KindCluster, busybox: str,
                                                                operator: Path):
    ns = f"mpo-{uuid.uuid4().hex[:8]}"
    assert kind_cluster.kubectl("create", "namespace", ns).returncode == 0
    try:
        content = {"www": {"index.html": {"mode": 0o644, "data": base64.b64encode(PAGE).decode()}}}
        secret = build_content_secret("web", ns, content, labels={})
        assert kind_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(secret)).returncode == 0
        sandboxpod = {"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": "web",
                                                                                          "namespace": ns},
                      "spec": {"provider": "metapod", "terminationGracePeriodSeconds": 2, "hostname": "web",
                               "containers": [{"name": "app", "image": busybox, "imagePullPolicy": "Never",
                                               "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                                               "volumeMounts": [{"name": "www", "mountPath": "/www"}]}],
                               "volumes": [{"name": "www", "configMap": {"name": "site"}}]}}
        proc = kind_cluster.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(sandboxpod))
        assert proc.returncode == 0, proc.stderr
        uid = json.loads(proc.stdout)["metadata"]["uid"]
        body = wait_json(kind_cluster, ["get", "sandboxpod", "web", "-n", ns], lambda o: (o.get("status") or {})
                         .get("phase") == "Running" and all(c.get("ready") for c in o["status"].get(
                             "containerStatuses") or [{}]), "the SandboxPod to run and be ready", operator)
        status = body["status"]
        pod = json.loads(kind_cluster.kubectl("get", "pod", f"sk8s-{uid}", "-n", ns, "-o", "json").stdout)
        assert status["provider"] == "metapod" and status["instanceID"] == f"sk8s-{uid}"
        assert status["podIP"] == pod["status"]["podIP"] == status["hostIP"]
        assert pod["metadata"]["ownerReferences"][0]["uid"] == uid and pod["spec"]["nodeName"]
        got = kind_cluster.kubectl("exec", "-n", ns, f"sk8s-{uid}", "--", "cat", "/www/index.html")
        assert got.stdout.encode() == PAGE, got.stderr
        events = wait_json(kind_cluster, ["get", "events", "-n", ns, "--field-selector",
                                          "involvedObject.kind=SandboxPod,involvedObject.name=web"],
                           lambda o: any(relayed_start(e) for e in o["items"]),
                           "the kubelet's events relayed to the SandboxPod", operator, timeout=60)["items"]
        started = next(e for e in events if relayed_start(e))
        assert started["involvedObject"]["fieldPath"] == "spec.containers{app}"
        assert not {"Scheduled", "FailedScheduling"} & {e["reason"] for e in events}  # those name meta nodes

        done = kind_cluster.kubectl("delete", "sandboxpod", "web", "-n", ns, "--wait=true", "--timeout=90s")
        assert done.returncode == 0, done.stderr + operator.read_text()[-3000:]
        gone = kind_cluster.kubectl("get", "pod", f"sk8s-{uid}", "-n", ns)
        assert gone.returncode != 0 and "NotFound" in gone.stderr  # deleted before the finalizer went
    finally:
        kind_cluster.kubectl("delete", "namespace", ns, "--wait=false")
