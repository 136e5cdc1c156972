"""The metapod provider against the real embedded meta-cluster: its Pods are accepted by a
real kube-apiserver (the builder's output validated by upstream's own validation), made
once, owned by their SandboxPod (deleting it deletes them: the real garbage collector),
listed and watched by label, and read back as SandboxInstances. The embedded meta-cluster
has no kubelets, so a Pod stays Pending; its status is written here as a kubelet would
(pods/status, as admin) to drive the Running and Unschedulable mappings. Streams reach the real
apiserver: a Pod on no node has an empty log and no exec (400, said so). Real nodes: tests/kind."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from operators.kubeclient.client import KubeClient
from operators.models.podspec import PodSpec
from operators.models.sandboxpod import EphemeralContainer
from operators.providers.errors import ProviderError
from operators.providers.logopts import ContainerLogOpts
from operators.providers.metapod.podbuild import MetaPlacement, file_key, files_secret_name
from operators.providers.metapod.podstatus import UNSCHEDULABLE
from operators.providers.metapod.provider import MetaPodProvider, pods_path, secrets_path
from operators.providers.metapod.streams import MetaPodStreams
from operators.providers.sandbox import SandboxRef

from .conftest import IMAGE, Meta

SPEC = {
    "provider": "metapod", "terminationGracePeriodSeconds": 1, "hostname": "mp",
    "initContainers": [{"name": "init", "image": IMAGE, "command": ["true"]},
                       {"name": "side", "image": IMAGE, "command": ["sleep", "3600"], "restartPolicy": "Always"}],
    "containers": [{
        "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"exec": {"command": ["true"]}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}, {"name": "scratch", "mountPath": "/tmp/s"},
                         {"name": "absent", "mountPath": "/etc/absent"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
    "volumes": [{"name": "conf", "configMap": {"name": "tenant-conf"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "absent", "secret": {"secretName": "not-there", "optional": True}}],
}
CONTENT = {"conf": {"app.conf": (b"mode=prod\n", 0o644), "sub/key": (b"k\n", 0o600)}}
LABELS = {"sk8s.io/cluster": "mp-demo", "sk8s.io/cluster-uid": "mp-uid-1"}


def make_sandboxpod(meta: Meta, namespace: str, name: str) -> SandboxRef:
    meta.apply({"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
                "spec": SPEC}, namespace)
    body = meta.get("sandboxpod", name, namespace)
    return SandboxRef(namespace, name, body["metadata"]["uid"])


@pytest.fixture
def home() -> str:
    return f"e2e-mp-{uuid.uuid4().hex[:8]}"


async def test_pods_are_made_once_read_back_watched_changed_and_deleted(meta: Meta, namespace: str, home: str):
    client = KubeClient.from_kubeconfig(str(meta.kubeconfig), "meta")
    relayed: list[tuple] = []
    provider = MetaPodProvider(MetaPlacement(home), lambda: client, delete_slack=5,
                               events=lambda *args, **kw: relayed.append((*args, kw.get("field_path"))))
    # The namespace's fence, accepted by a real apiserver's validation, and applied twice alike.
    for _ in range(2):
        await provider.isolate_namespace(namespace)
    fence = await client.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/sk8s-sandboxes")
    assert fence["metadata"]["generation"] == 1 and fence["spec"]["podSelector"] == {}
    assert "10.0.0.0/8" in fence["spec"]["egress"][0]["to"][1]["ipBlock"]["except"]
    ref = make_sandboxpod(meta, namespace, "mp")
    spec = PodSpec.model_validate(SPEC)
    seen: list[SandboxRef] = []

    async def collect():
        async for r in provider.watch():
            seen.append(r)
    watcher = asyncio.create_task(collect())
    try:
        await provider.prepare_volumes(ref, spec, LABELS, CONTENT)
        name = await provider.ensure(ref, spec, LABELS)
        assert name == ref.instance_name
        assert await provider.ensure(ref, spec, LABELS) == name  # a second create finds it: no duplicate
        pod = await client.get(pods_path(namespace, name))
        assert pod["metadata"]["ownerReferences"][0]["uid"] == ref.uid
        assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["enableServiceLinks"] is False
        assert not pod["spec"].get("hostNetwork") and "hostPath" not in str(pod["spec"]["volumes"])
        assert not any(m["mountPath"].startswith("/var/run/secrets") for m in pod["spec"]["containers"][0]
                       .get("volumeMounts") or [])  # no token volume added by the apiserver
        secret = await client.get(secrets_path(namespace, files_secret_name(ref)))
        assert set(secret["data"]) == {file_key("conf", "app.conf"), file_key("conf", "sub/key")}

        inst = await provider.inspect(ref)
        assert (inst.state, inst.ip, inst.containers) == ("creating", None, [])
        await until_async(lambda: ref in seen, "the watch to report the new Pod")
        await kubelet_events_are_relayed(client, pod, ref, relayed)
        assert ref in await provider.list()
        other = MetaPodProvider(MetaPlacement(home + "-other"), lambda: client)
        assert ref not in await other.list()  # another installation's sandboxes are not its own

        seen.clear()  # before: the event may come while the write is being answered
        await write_status(client, namespace, name, running_status())
        await until_async(lambda: ref in seen, "the watch to report the status change")
        inst = await provider.inspect(ref)  # now from the watch's cache
        assert (inst.state, inst.ip, inst.host_ip) == ("running", "10.244.3.7", "10.244.3.7")
        assert [(c.name, c.state, c.restart_count, c.ready) for c in inst.containers] == [("app", "running", 1, True)]
        assert inst.containers[0].last_state.exit_code == 137

        await checks_of_changes_in_place(provider, client, ref, spec)

        await provider.delete(ref, 0)
        assert await client.get_or_none(pods_path(namespace, name)) is None
        assert await client.get_or_none(secrets_path(namespace, files_secret_name(ref))) is None
        await provider.delete(ref, 0)  # idempotent: gone is gone

        async def none_left() -> bool:
            return await provider.inspect(ref) is None
        await until_async(none_left, "the watch to see the Pod gone")
    finally:
        watcher.cancel()
        await client.close()


async def checks_of_changes_in_place(provider: MetaPodProvider, client: KubeClient, ref: SandboxRef,
                                     spec: PodSpec) -> None:
    path = pods_path(ref.namespace, ref.instance_name)
    newer = spec.model_copy(update={"containers": [spec.containers[0].model_copy(update={"image": IMAGE + "-2"})]})
    assert await provider.change_images(ref, newer, LABELS) == ["app"]
    assert (await client.get(path))["spec"]["containers"][0]["image"] == IMAGE + "-2"
    assert await provider.change_images(ref, newer, LABELS) == []

    debug = EphemeralContainer.model_validate({"name": "dbg", "image": IMAGE, "command": ["sh"],
                                               "targetContainerName": "app"})
    await provider.add_ephemeral_container(ref, spec, LABELS, debug)
    await provider.add_ephemeral_container(ref, spec, LABELS, debug)  # idempotent
    eph = (await client.get(path))["spec"]["ephemeralContainers"]
    assert [(c["name"], c["targetContainerName"]) for c in eph] == [("dbg", "app")]

    changed = {"conf": {"app.conf": (b"mode=dev\n", 0o644), "sub/key": (b"k\n", 0o600)}}
    assert await provider.write_volumes(ref, spec, changed) == ["conf"]
    assert await provider.write_volumes(ref, spec, changed) == []
    grown = {"conf": {**changed["conf"], "new": (b"x", 0o644)}}
    with pytest.raises(ProviderError) as info:
        await provider.write_volumes(ref, spec, grown)
    assert info.value.reason == "NotSupported"


async def test_deleting_the_sandboxpod_deletes_its_pod_and_streams_of_a_pod_on_no_node(
        meta: Meta, namespace: str, home: str):
    client = KubeClient.from_kubeconfig(str(meta.kubeconfig), "meta")
    provider = MetaPodProvider(MetaPlacement(home), lambda: client)
    streams = MetaPodStreams(lambda: client)
    ref = make_sandboxpod(meta, namespace, "mp-gc")
    try:
        spec = PodSpec.model_validate(SPEC)
        await provider.prepare_volumes(ref, spec, LABELS, CONTENT)
        await provider.ensure(ref, spec, LABELS)
        await write_status(client, namespace, ref.instance_name, {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]})
        inst = await provider.inspect(ref)
        assert (inst.state, inst.reason, inst.message) == ("creating", "Unschedulable", UNSCHEDULABLE)

        # The real apiserver: a Pod on no node has an empty log, and no exec (400, said so).
        assert b"".join([c async for c in streams.logs(ref, "app", ContainerLogOpts())]) == b""
        with pytest.raises(ProviderError) as info:
            await streams.open_exec_session(ref, "app", ["true"], stdin=False, tty=False)
        assert "400" in str(info.value) and info.value.retryable is False

        meta.kubectl("delete", "sandboxpod", ref.name, "-n", namespace, "--wait=true", "--timeout=60s")
        await until_async(lambda: pod_gone(client, ref), "the garbage collector to delete the owned Pod", 90)
        await until_async(lambda: secret_gone(client, ref), "the garbage collector to delete the files Secret", 90)
    finally:
        await client.close()


async def kubelet_events_are_relayed(client: KubeClient, pod: dict, ref: SandboxRef, relayed: list) -> None:
    """Events posted on the meta Pod as a kubelet and a scheduler post them (there are none
    here): the kubelet's container events reach the sink, the scheduler's (naming a node) not."""
    involved = {"kind": "Pod", "apiVersion": "v1", "namespace": ref.namespace, "name": ref.instance_name,
                "uid": pod["metadata"]["uid"]}
    for i in range(20):  # the relay's watch starts with the provider's: post until it is on
        for reason, path, source in (("Scheduled", None, "default-scheduler"),
                                     ("Started", "spec.containers{app}", "kubelet")):
            await client.create(f"/api/v1/namespaces/{ref.namespace}/events", {
                "metadata": {"name": f"{ref.instance_name}.{reason.lower()}{i}"},
                "involvedObject": {**involved, **({"fieldPath": path} if path else {})},
                "reason": reason, "message": f"{reason} {i} on node-7", "type": "Normal",
                "source": {"component": source}})
        await asyncio.sleep(0.5)
        if relayed:
            break
    assert relayed and relayed[0] == (ref, "Normal", "Started", relayed[0][3], "spec.containers{app}")
    assert all(r[2] == "Started" for r in relayed)  # never the scheduler's


def running_status() -> dict:
    return {"phase": "Running", "podIP": "10.244.3.7", "podIPs": [{"ip": "10.244.3.7"}], "hostIP": "192.168.9.9",
            "startTime": "2026-12-01T02:00:00Z",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "app", "ready": True, "started": True, "restartCount": 1, "image": IMAGE, "imageID": "",
                "state": {"running": {"startedAt": "2026-12-01T02:01:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}


async def write_status(client: KubeClient, namespace: str, name: str, status: dict) -> None:
    """What a kubelet would write (there is none here)."""
    await client.patch_status(pods_path(namespace, name), status)


async def pod_gone(client: KubeClient, ref: SandboxRef) -> bool:
    return await client.get_or_none(pods_path(ref.namespace, ref.instance_name)) is None


async def secret_gone(client: KubeClient, ref: SandboxRef) -> bool:
    return await client.get_or_none(secrets_path(ref.namespace, files_secret_name(ref))) is None


async def until_async(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
