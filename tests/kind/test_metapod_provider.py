"""The metapod provider on real nodes (the kind test bed: 3 nodes, real kubelets and
containerd): a SandboxPod's Pod is scheduled and run by the meta kubelet, its status read
back as the sandbox's (Running, ready, the pod IP; restarts and the last state of a
crashing container), its files Secret mounted, its environment as the tenant's pod would
see it, locked down (seccomp filtered, no service-account token), and every stream through
the real apiserver and kubelet: logs, exec (stdin, exit code, hostile arguments as data),
attach and port-forward. Skips, naming why, where the kind bed cannot run."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from operators.kubeclient.client import KubeClient
from operators.models.podspec import PodSpec
from operators.providers.logopts import ContainerLogOpts
from operators.providers.metapod.podbuild import MetaPlacement
from operators.providers.metapod.provider import MetaPodProvider
from operators.providers.metapod.streams import MetaPodStreams
from operators.providers.sandbox import SandboxRef

from tests.kind.conftest import REPO, KindCluster

pytestmark = pytest.mark.kind
LABELS = {"sk8s.io/cluster": "kind-mp", "sk8s.io/cluster-uid": "kind-mp-uid"}
HOSTILE = ["a; rm -rf / #", "$(id)", "`x`", "'\"", "--", "-n", "ünï code", ""]
CONTENT = {"www": {"index.html": (b"served by the sandbox\n", 0o644)}}


def spec_of(image: str, **extra) -> dict:
    base = {
        "provider": "metapod", "terminationGracePeriodSeconds": 2, "hostname": "web",
        "containers": [
            {"name": "app", "image": image, "imagePullPolicy": "Never",
             "command": ["sh", "-c", "echo hello; echo oops >&2; exec httpd -f -p 8080 -h /www"],
             "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                     {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
             "ports": [{"containerPort": 8080, "name": "http"}],
             "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
             "volumeMounts": [{"name": "www", "mountPath": "/www"}]},
            {"name": "echo", "image": image, "imagePullPolicy": "Never", "command": ["cat"], "stdin": True}],
        "volumes": [{"name": "www", "configMap": {"name": "site"}}],
    }
    return {**base, **extra}


@pytest.fixture(scope="module")
def crds(kind_cluster: KindCluster) -> None:
    proc = kind_cluster.kubectl("apply", "-f", str(REPO / "crds/sk8s.io_sandboxpods.yaml"))
    assert proc.returncode == 0, proc.stderr
    proc = kind_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/sandboxpods.sk8s.io")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def namespace(kind_cluster: KindCluster, crds):
    name = f"mp-{uuid.uuid4().hex[:8]}"
    assert kind_cluster.kubectl("create", "namespace", name).returncode == 0
    yield name
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false")


def sandboxpod(kind: KindCluster, namespace: str, name: str, spec: dict) -> SandboxRef:
    obj = {"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name, "namespace": namespace},
           "spec": spec}
    proc = kind.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(obj))
    assert proc.returncode == 0, proc.stderr
    return SandboxRef(namespace, name, json.loads(proc.stdout)["metadata"]["uid"])


async def until_instance(provider: MetaPodProvider, ref: SandboxRef, predicate, what: str, timeout: float = 120):
    deadline = asyncio.get_running_loop().time() + timeout
    inst = None
    while asyncio.get_running_loop().time() < deadline:
        inst = await provider.inspect(ref)
        if inst is not None and predicate(inst):
            return inst
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {inst}")


async def run(streams: MetaPodStreams, ref: SandboxRef, command: list[str], stdin: bytes | None = None,
              container: str = "app") -> tuple[bytes, bytes, int]:
    session = await streams.open_exec_session(ref, container, command, stdin=stdin is not None, tty=False)
    try:
        if stdin is not None:
            await session.write_stdin(stdin)
            await session.close_stdin()
        out, err = b"", b""
        while chunk := await asyncio.wait_for(session.read_stdout(), 30):
            out += chunk
        while chunk := await asyncio.wait_for(session.read_stderr(), 30):
            err += chunk
        return out, err, await asyncio.wait_for(session.wait(), 30)
    finally:
        await session.close()


async def test_a_sandbox_runs_on_a_node_and_every_stream_reaches_it(kind_cluster: KindCluster, busybox: str,
                                                                     namespace: str):
    client = KubeClient.from_kubeconfig(kind_cluster.kubeconfig, "meta")
    provider = MetaPodProvider(MetaPlacement(f"kind-{uuid.uuid4().hex[:6]}"), lambda: client)
    streams = MetaPodStreams(lambda: client)
    raw = spec_of(busybox)
    ref = sandboxpod(kind_cluster, namespace, "web", raw)
    spec = PodSpec.model_validate(raw)
    try:
        await provider.prepare_volumes(ref, spec, LABELS, CONTENT)
        await provider.ensure(ref, spec, LABELS)
        inst = await until_instance(provider, ref, lambda i: i.state == "running" and all(
            c.ready for c in i.containers) and len(i.containers) == 2, "the sandbox to run and be ready")
        assert inst.ip and inst.host_ip == inst.ip

        logs = b"".join([c async for c in streams.logs(ref, "app", ContainerLogOpts())])
        assert sorted(logs.splitlines()[:2]) == [b"hello", b"oops"]  # stdout and stderr, in either order
        stamped = b"".join([c async for c in streams.logs(ref, "app", ContainerLogOpts(tail=1, timestamps=True))])
        stamp, _, line = stamped.partition(b" ")
        assert line in (b"hello\n", b"oops\n") and stamp[:4].isdigit() and stamp.endswith(b"Z")

        out, err, code = await run(streams, ref, ["printf", "%s\\n", *HOSTILE])
        assert (out.decode().split("\n")[:-1], code) == (HOSTILE, 0)
        assert await run(streams, ref, ["sh", "-c", "cat; echo to-err >&2; exit 3"], stdin=b"in\n") == \
            (b"in\n", b"to-err\n", 3)
        out, _, _ = await run(streams, ref, ["sh", "-c", 'echo "$POD_NAME $HOST_IP"; cat /www/index.html; '
                                                        "grep Seccomp: /proc/self/status; "
                                                        "ls /var/run/secrets/kubernetes.io 2>&1 || true"])
        lines = out.decode().splitlines()
        assert lines[0] == f"web {inst.ip}"  # the SandboxPod's name; the host's address is the sandbox's
        assert lines[1] == "served by the sandbox"
        assert lines[2].split() == ["Seccomp:", "2"]  # RuntimeDefault: filtered
        assert "No such file" in lines[3]  # no service-account token

        attach = await streams.open_attach_session(ref, "echo", stdin=True, tty=False)
        await attach.write_stdin(b"through attach\n")
        assert await asyncio.wait_for(attach.read_stdout(), 30) == b"through attach\n"
        await attach.close()

        reader, writer = await streams.open_port_stream(ref, 8080)
        writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert answer.startswith(b"HTTP/1.") and answer.endswith(b"served by the sandbox\n")
    finally:
        await provider.delete(ref, 2)
        assert await provider.inspect(ref) is None
        await client.close()


async def test_a_crashing_container_reports_its_restarts_and_last_state(kind_cluster: KindCluster, busybox: str,
                                                                        namespace: str):
    client = KubeClient.from_kubeconfig(kind_cluster.kubeconfig, "meta")
    provider = MetaPodProvider(MetaPlacement(f"kind-{uuid.uuid4().hex[:6]}"), lambda: client)
    raw = {"provider": "metapod", "terminationGracePeriodSeconds": 1,
           "containers": [{"name": "crash", "image": busybox, "imagePullPolicy": "Never",
                           "command": ["sh", "-c", "echo bye; exit 7"]}]}
    ref = sandboxpod(kind_cluster, namespace, "crash", raw)
    try:
        await provider.ensure(ref, PodSpec.model_validate(raw), LABELS)
        inst = await until_instance(provider, ref, lambda i: i.containers and i.containers[0].restart_count >= 1
                                    and i.containers[0].last_state is not None, "a restart")
        last = inst.containers[0].last_state
        assert (last.state, last.exit_code, last.reason) == ("terminated", 7, "Error")
        streams = MetaPodStreams(lambda: client)
        previous = b"".join([c async for c in streams.logs(ref, "crash", ContainerLogOpts(previous=True))])
        assert previous == b"bye\n"
    finally:
        await provider.delete(ref, 1)
        await client.close()
