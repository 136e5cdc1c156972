"""SandboxPods on the aliyun provider, end to end: kubectl apply -> the aliyun SandboxPod
operator -> the real Alibaba SDK -> the local OpenAPI emulator (signatures checked) -> an
ECI container group that is a real sandbox on this host -> status, logs, deletion with
nothing left in the emulator's inventory; exec through ExecContainerCommand and its
WebSocket into the group's sandbox (podman exec); an image and a ConfigMap's files changed
in place through UpdateContainerGroup."""
from __future__ import annotations

import asyncio
import base64
import json
import urllib.request

import pytest

from operators.config import home_id
from operators.emulator.alibaba.launch import PLACEMENT_ENV
from operators.providers.aliyun.client import AliyunClient
from operators.providers.aliyun.factory import read_credentials
from operators.providers.aliyun.streams import AliyunStreams
from operators.providers.errors import ProviderError
from operators.sandboxpod.sandbox import ref_of

from .conftest import IMAGE, phase, sandboxpod, until

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


def aliyun_streams(meta) -> AliyunStreams:
    """The installation's aliyun streaming side, as the virtual node makes it."""
    port = (meta.home / "alibaba-emulator.port").read_text().strip()
    client = AliyunClient(read_credentials(str(meta.home / "aliyun-credentials")),
                          PLACEMENT_ENV["SK8S_ALIYUN_REGION"], endpoint=f"127.0.0.1:{port}")
    return AliyunStreams(client, home_id(meta.home))


async def run_exec(streams: AliyunStreams, ref, command: list[str], *, stdin: bytes | None = None,
                   tty: bool = False, size: tuple[int, int] | None = None) -> tuple[bytes, bytes, int]:
    """stdout, stderr and the exit code of `command` run in the SandboxPod's container."""
    session = await streams.open_exec_session(ref, "main", command, stdin=stdin is not None, tty=tty)
    try:
        if size is not None:
            session.resize(*size)
        if stdin is not None:
            await session.write_stdin(stdin)
            await session.close_stdin()

        async def drain(read) -> bytes:
            chunks = []
            while data := await read():
                chunks.append(data)
            return b"".join(chunks)

        out, err = await asyncio.wait_for(asyncio.gather(drain(session.read_stdout), drain(session.read_stderr)), 60)
        return out, err, await asyncio.wait_for(session.wait(), 30)
    finally:
        await session.close()


def test_exec_in_an_eci_group_streams_stdio_and_the_exit_code(meta, namespace):
    meta.apply(sandboxpod("exec-eci", [{"name": "main", "command": ["sleep", "3600"]}], provider="aliyun"),
               namespace)
    obj = meta.wait_for("sandboxpod", "exec-eci", namespace, lambda o: phase(o) == "Running", timeout=120)
    streams, ref = aliyun_streams(meta), ref_of(obj)
    hostile = "$(id); rm -rf / # 'quoted' \"\\"

    async def scenario():
        # Each argument arrives as it was given: no shell on the way sees the hostile one.
        first = await run_exec(streams, ref, ["sh", "-c", 'echo out; echo "$1" >&2; exit 3', "sh", hostile])
        piped = await run_exec(streams, ref, ["cat"], stdin=b"piped line\n")
        # read: the size is asked for after the resize has reached the terminal.
        term = await run_exec(streams, ref, ["sh", "-c", "read line; sleep 1; stty size"], stdin=b"go\r",
                              tty=True, size=(120, 40))
        with pytest.raises(ProviderError, match="attach"):
            await streams.open_attach_session(ref, "main", stdin=False, tty=False)
        return first, piped, term

    first, piped, term = asyncio.run(scenario())
    assert first == (b"out\n", (hostile + "\n").encode(), 3)
    assert piped == (b"piped line\n", b"", 0)
    out, err, code = term
    assert b"40 120" in out and err == b"" and code == 0
    calls = emulator(meta, "calls")["calls"]
    assert calls.get("ExecContainerCommand", 0) >= 3
    meta.kubectl("delete", "sandboxpod", "exec-eci", "-n", namespace, "--timeout=120s")


def content_secret(name: str, files: dict[str, bytes]) -> dict:
    """The volume-content Secret the virtual node writes for a pod (operators/volumecontent.py)."""
    blob = {path: {"data": base64.b64encode(data).decode(), "mode": 0o644} for path, data in files.items()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "labels": {"sk8s.io/volume-content": "true"}},
            "data": {"cfg": base64.b64encode(json.dumps(blob).encode()).decode()}}


def main_status(obj: dict) -> dict:
    return next((c for c in (obj.get("status") or {}).get("containerStatuses") or [] if c["name"] == "main"), {})


def test_an_image_and_a_configmaps_files_change_in_place_through_update_container_group(meta, namespace):
    """containerImages (what the virtual node writes for `kubectl set image`): the group's
    container restarts with the new image, restartCount 1; a content Secret rewritten (a
    ConfigMap changed): the new file is in the running container, without a restart."""
    other = IMAGE.rsplit(":", 1)[0] + ":e2e-eci-swap"
    assert meta.podman("tag", IMAGE, other).returncode == 0  # the same root file system, another name
    meta.apply(content_secret("upd-eci", {"greeting": b"hello"}), namespace)
    pod = sandboxpod("upd-eci", [{"name": "main", "command": ["sleep", "3600"],
                                  "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}], provider="aliyun",
                     volumes=[{"name": "cfg", "configMap": {"name": "settings"}}])
    meta.apply(pod, namespace)
    obj = meta.wait_for("sandboxpod", "upd-eci", namespace, lambda o: phase(o) == "Running", timeout=120)
    streams, ref = aliyun_streams(meta), ref_of(obj)

    def cat() -> bytes:
        try:
            return asyncio.run(run_exec(streams, ref, ["cat", "/etc/cfg/greeting"]))[0]
        except ProviderError as err:  # IncorrectStatus while the group is Updating
            assert err.reason == "IncorrectStatus", err
            return b""
    assert cat() == b"hello"

    meta.apply(content_secret("upd-eci", {"greeting": b"bonjour"}), namespace)
    until(lambda: cat() == b"bonjour", 60, "the ConfigMap's new file in the container")
    assert main_status(meta.get("sandboxpod", "upd-eci", namespace))["restartCount"] == 0

    meta.kubectl("patch", "sandboxpod", "upd-eci", "-n", namespace, "--type=merge",
                 "-p", json.dumps({"containerImages": [{"name": "main", "image": other}]}))
    obj = meta.wait_for("sandboxpod", "upd-eci", namespace,
                        lambda o: main_status(o).get("restartCount") == 1 and "running" in main_status(o)["state"]
                        and phase(o) == "Running", timeout=90)
    assert main_status(obj)["image"] == other
    (group,) = groups_of(meta, obj["metadata"]["uid"])
    assert group["Status"] == "Running" and group["ContainerGroupId"] == obj["status"]["instanceID"]
    (sandbox,) = json.loads(meta.podman("pod", "ps", "--format=json",
                                        f"--filter=name=sk8s-{obj['metadata']['uid']}").stdout)
    running = json.loads(meta.podman("ps", "--format=json", f"--filter=pod={sandbox['Id']}").stdout)
    assert other in [c["Image"] for c in running]  # the container runs the new image indeed
    assert cat() == b"bonjour"  # the files stay across the restart
    assert emulator(meta, "calls")["calls"].get("UpdateContainerGroup", 0) >= 2
    meta.kubectl("delete", "sandboxpod", "upd-eci", "-n", namespace, "--timeout=120s")
