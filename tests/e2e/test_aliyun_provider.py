"""SandboxPods on the aliyun provider, end to end: kubectl apply -> the aliyun SandboxPod
operator -> the real Alibaba SDK -> the local OpenAPI emulator (signatures checked) -> an
ECI container group that is a real sandbox on this host -> status, logs, deletion with
nothing left in the emulator's inventory."""
from __future__ import annotations

import json
import urllib.request

import pytest

from .conftest import phase, sandboxpod, until

pytestmark = pytest.mark.e2e


def emulator(meta, path: str) -> dict:
    port = (meta.home / "alibaba-emulator.port").read_text().strip()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/_emulator/{path}", timeout=10) as resp:
        return json.loads(resp.read())


def groups_of(meta, uid: str) -> list[dict]:
    return [g for g in emulator(meta, "inventory")["ContainerGroup"]
            if {"Key": "sk8s.io/uid", "Value": uid} in g["Tags"]]


def test_a_sandboxpod_runs_as_an_eci_group_and_leaves_nothing(meta, namespace):
    meta.apply(sandboxpod("on-eci", [{
        "name": "talker", "command": ["sh", "-c", "echo hello from eci; exec sleep 3600"],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
    }], provider="aliyun"), namespace)
    obj = meta.wait_for("sandboxpod", "on-eci", namespace, lambda o: phase(o) == "Running", timeout=120)
    st = obj["status"]
    uid = obj["metadata"]["uid"]
    assert st["provider"] == "aliyun" and st["instanceID"].startswith("eci-") and st["podIP"]
    (group,) = groups_of(meta, uid)
    assert group["ContainerGroupId"] == st["instanceID"] and group["Status"] == "Running"
    # The group is a real sandbox of this home, with the pod's container in it.
    pods = json.loads(meta.podman("pod", "ps", "--format=json", f"--filter=name=sk8s-{uid}").stdout or "[]")
    assert len(pods) == 1
    logs = until(lambda: "hello from eci" in (out := meta.sk8s("sandbox-logs", "on-eci", "-n", namespace,
                                                               check=False).stdout) and out,
                 60, "the container's output through DescribeContainerLog")
    assert logs.strip() == "hello from eci"
    assert emulator(meta, "calls")["calls"].get("CreateContainerGroup", 0) >= 1

    meta.kubectl("delete", "sandboxpod", "on-eci", "-n", namespace, "--timeout=120s")
    until(lambda: groups_of(meta, uid) == [], 60, "the group deleted")
    until(lambda: json.loads(meta.podman("pod", "ps", "--format=json",
                                         f"--filter=name=sk8s-{uid}").stdout or "[]") == [],
          60, "its sandbox removed")


def test_a_field_eci_cannot_express_is_refused_by_name_and_nothing_is_made(meta, namespace):
    meta.apply(sandboxpod("no-startup-probe", [{
        "name": "main", "command": ["sleep", "3600"],
        "startupProbe": {"exec": {"command": ["true"]}},
    }], provider="aliyun"), namespace)
    obj = meta.wait_for("sandboxpod", "no-startup-probe", namespace,
                        lambda o: "startupProbe" in json.dumps(o.get("status") or {}), timeout=60)
    assert groups_of(meta, obj["metadata"]["uid"]) == []
