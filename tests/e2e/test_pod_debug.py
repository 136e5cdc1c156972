"""`kubectl debug` of a running pod: an ephemeral container added to its sandbox, sharing
the target container's processes, with its logs, its status and an interactive session."""
from __future__ import annotations

import json
import time

import pytest

from .conftest import IMAGE
from .tenant import delete_cluster, make_cluster

POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: target}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: app, image: "{IMAGE}", imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}}
"""


def _running(pod: dict) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


def _ephemeral(pod: dict, name: str) -> dict:
    return next((s for s in pod.get("status", {}).get("ephemeralContainerStatuses") or []
                 if s.get("name") == name), {})


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "debugs")
    t.kubectl("apply", "-f", "-", input=POD)
    t.wait_pod("target", _running, timeout=90)
    yield t
    delete_cluster(meta, "debugs")


def _diagnostics(meta) -> str:
    """The SandboxPods and the operators' last log lines, for a debug container that never ran."""
    sbps = meta.kubectl("get", "sandboxpods", "-A", "-o", "json", check=False).stdout
    logs = "".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:]) + "\n"
                   for p in sorted((meta.home / "logs").glob("*.log")) if "sandboxpod" in p.name
                   or "virtual" in p.name)
    return f"{sbps[-6000:]}\n{logs[-12000:]}"


def test_a_debug_container_sees_the_target_processes_and_its_output_is_logged(tenant):
    tenant.kubectl("debug", "target", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--target=app",
                   "-c", "dbg", "--", "sh", "-c", "ps; echo hi")
    try:
        pod = tenant.wait_pod("target", lambda p: "terminated" in (_ephemeral(p, "dbg").get("state") or {}),
                              timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnostics(tenant.meta)}") from None
    status = _ephemeral(pod, "dbg")
    assert status["state"]["terminated"]["exitCode"] == 0, status
    assert status["image"] == IMAGE and status["containerID"].startswith("podman://"), status
    logs = tenant.kubectl("logs", "target", "-c", "dbg").stdout
    assert "hi" in logs.splitlines(), logs
    assert "sleep 3600" in logs, f"the target's process is not visible: {logs}"
    # The pod itself is untouched: its container still runs, not restarted.
    app = pod["status"]["containerStatuses"][0]
    assert "running" in app["state"] and app["restartCount"] == 0, app


def test_kubectl_debug_with_stdin_attaches_to_the_debug_container(tenant):
    proc = tenant.kubectl("debug", "-i", "target", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent",
                          "--target=app", "-c", "shell", "--", "sh",
                          input="echo from-the-debug-shell $((6*7))\nexit 3\n", timeout=120, check=False)
    assert "from-the-debug-shell 42" in proc.stdout, (proc.stdout, proc.stderr)
    pod = tenant.wait_pod("target", lambda p: "terminated" in (_ephemeral(p, "shell").get("state") or {}),
                          timeout=60)
    assert _ephemeral(pod, "shell")["state"]["terminated"]["exitCode"] == 3, _ephemeral(pod, "shell")


def test_a_privileged_debug_container_is_refused_naming_the_field(tenant):
    patch = ('[{"op": "add", "path": "/spec/ephemeralContainers/-", "value": {"name": "root", "image": "'
             + IMAGE + '", "securityContext": {"privileged": true}}}]')
    proc = tenant.kubectl("patch", "pod", "target", "--subresource=ephemeralcontainers", "--type=json",
                          "-p", patch, check=False)
    assert proc.returncode != 0
    assert "securityContext.privileged: Forbidden" in proc.stderr, proc.stderr
    time.sleep(0.5)
    names = [c["name"] for c in tenant.pod("target")["spec"].get("ephemeralContainers") or []]
    assert "root" not in names, names


def test_the_compatibility_policy_type_checks_with_ephemeral_containers(tenant):
    # Ephemeral containers are another CEL type than containers: the policy still type-checks.
    deadline = time.monotonic() + 30
    while True:  # the apiserver type-checks a policy in the background, then records its generation
        policy = json.loads(tenant.kubectl("get", "validatingadmissionpolicy", "sk8s-compatibility",
                                           "-o", "json").stdout)
        status = policy.get("status") or {}
        if status.get("observedGeneration") == policy["metadata"]["generation"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status.get("observedGeneration") == policy["metadata"]["generation"], status
    # The one warning there was before ephemeral containers: a StatefulSet field, read for that kind only.
    warnings = (status.get("typeChecking") or {}).get("expressionWarnings") or []
    assert all("volumeClaimTemplates" in w["warning"] for w in warnings), warnings
