"""PodSync's reconcile against in-memory tenant and meta apiservers: a bound pod becomes a
SandboxPod, the SandboxPod's status becomes the pod's, a deleted pod takes its SandboxPod
with it, and a SandboxPod nobody owns is removed."""
import asyncio
import base64

from operators.kubeclient.events import EventRecorder
from operators.virtualnode.controllers.podsync import COMPONENT, PodSync
from operators.virtualnode.informers import NodeInformers

from .fakekube import FakeKube, Tasks, until

NODE = "vn-c"
META_NS = "tenant-c"
PODS = "/api/v1/namespaces/default/pods"
SBPS = f"/apis/sk8s.io/v1alpha1/namespaces/{META_NS}/sandboxpods"


def pod(name="web", node=NODE, **container):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "app", "image": "nginx:1.27", **container}]}}


class Node:
    """The pod-sync part of a virtual node, its informers on the fake apiservers."""

    def __init__(self):
        self.tenant, self.meta = FakeKube("tenant"), FakeKube("meta")
        self.informers = NodeInformers.create(self.tenant, self.meta, meta_namespace=META_NS, cluster_uid="u1",
                                                node_name=NODE)
        inf = self.informers
        self.sync = PodSync(tenant=self.tenant, meta=self.meta, pods=inf.pods, sandboxes=inf.sandboxes,
                            configmaps=inf.configmaps, secrets=inf.secrets,
                            events=EventRecorder(self.tenant, component=COMPONENT, host=NODE), node_name=NODE,
                            meta_namespace=META_NS, cluster="c", cluster_uid="u1",
                            allocatable={"cpu": "4", "memory": "8Gi"})

    async def start(self, tasks: Tasks) -> None:
        for i in (self.informers.pods, self.informers.sandboxes, self.informers.configmaps, self.informers.secrets):
            tasks(i)
        await asyncio.gather(self.informers.pods.synced.wait(), self.informers.sandboxes.synced.wait())
        tasks(self.sync)

    def sandbox(self, name="default.web"):
        return self.meta.stored(f"{SBPS}/{name}")

    def tenant_pod(self, name="web"):
        return self.tenant.stored(f"{PODS}/{name}")

    def events(self, reason):
        return [o for k, o in self.tenant.objects.items() if k[1] == "events" and o["reason"] == reason]


async def test_a_bound_pod_becomes_a_sandboxpod_with_its_environment_resolved():
    node = Node()
    node.tenant.put("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}})
    node.tenant.put("/api/v1/namespaces/default/secrets",
                    {"metadata": {"name": "s"}, "data": {"token": base64.b64encode(b"t0ps3cret").decode()}})
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    node.tenant.put(PODS, pod(env=env, command=["run", "--mode=$(MODE)"]))
    node.tenant.put(PODS, pod("elsewhere", node="other-node"))
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        sbp = node.sandbox()
        uid = node.tenant_pod()["metadata"]["uid"]
        assert sbp["metadata"]["labels"]["sk8s.io/pod-uid"] == uid
        assert sbp["metadata"]["labels"]["sk8s.io/cluster-uid"] == "u1"
        assert sbp["metadata"]["annotations"] == {"sk8s.io/pod-namespace": "default", "sk8s.io/pod-name": "web"}
        (c,) = sbp["spec"]["containers"]
        assert c["image"] == "nginx:1.27" and c["command"] == ["run", "--mode=fast"]
        assert c["env"] == [{"name": "MODE", "value": "fast"}, {"name": "TOKEN", "value": "t0ps3cret"},
                            {"name": "POD", "value": "web"}]
        assert sbp["spec"]["terminationGracePeriodSeconds"] == 5 and sbp["spec"]["clusterRef"] == {"name": "c"}
        # Until the sandbox reports, the pod is Pending with its containers being created.
        await until(lambda: (node.tenant_pod().get("status") or {}).get("phase") == "Pending")
        st = node.tenant_pod()["status"]
        assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        # A pod bound to another node is not this node's.
        assert node.sandbox("default.elsewhere") is None


async def test_sandboxpod_status_flows_back_into_the_pod_status():
    node = Node()
    node.tenant.put(PODS, pod())
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        await node.meta.patch(f"{SBPS}/default.web/status", {"status": {
            "phase": "Running", "podIP": "10.1.0.7", "hostIP": "192.168.5.1", "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "ContainersReady", "status": "True",
                            "lastTransitionTime": "2026-01-01T00:00:02Z"}],
            "containerStatuses": [{"name": "app", "ready": True, "started": True, "restartCount": 1,
                                   "imageID": "docker.io/library/nginx@sha256:abc", "containerID": "podman://1",
                                   "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]}})
        await until(lambda: (node.tenant_pod().get("status") or {}).get("podIP") == "10.1.0.7")
        st = node.tenant_pod()["status"]
        assert st["phase"] == "Running" and st["hostIP"] == "192.168.5.1"
        assert st["podIPs"] == [{"ip": "10.1.0.7"}]
        (cs,) = st["containerStatuses"]
        assert cs["ready"] and cs["restartCount"] == 1 and cs["containerID"] == "podman://1"
        assert cs["state"] == {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
        ready = {c["type"]: c["status"] for c in st["conditions"]}
        assert ready["Ready"] == "True" and ready["ContainersReady"] == "True" and ready["PodScheduled"] == "True"
        assert st["qosClass"] == "BestEffort"


async def test_a_deleted_pod_deletes_its_sandboxpod_and_then_goes():
    node = Node()
    node.tenant.put(PODS, pod())
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        await node.tenant.delete(f"{PODS}/web")  # graceful: bound, so only marked deleting
        assert node.tenant_pod()["metadata"]["deletionTimestamp"]
        await until(lambda: node.sandbox() is None and node.tenant_pod() is None)
        assert ("delete", f"{SBPS}/default.web") in node.meta.calls


async def test_a_pods_grace_period_reaches_the_sandboxpod_as_an_annotation():
    node = Node()
    node.tenant.put(PODS, pod())
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        node.meta.put(SBPS, {**node.sandbox(), "metadata": {**node.sandbox()["metadata"], "finalizers": ["x"]}})
        await node.tenant.delete(f"{PODS}/web", grace=2)
        await until(lambda: (node.sandbox() or {}).get("metadata", {}).get("deletionTimestamp"))
        assert node.sandbox()["metadata"]["annotations"]["sk8s.io/deletion-grace-period-seconds"] == "2"
        assert node.tenant_pod() is not None  # until the sandbox has stopped
        node.meta.remove(f"{SBPS}/default.web")
        await until(lambda: node.tenant_pod() is None)


async def test_an_orphaned_sandboxpod_is_deleted_and_a_vanished_one_fails_its_pod():
    node = Node()
    node.meta.put(SBPS, {"metadata": {"name": "default.gone", "labels": {
        "sk8s.io/cluster-uid": "u1", "sk8s.io/pod-uid": "uid-of-a-deleted-pod"}}, "spec": {}})
    node.tenant.put(PODS, pod())
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox("default.gone") is None)
        await until(lambda: node.sandbox() is not None)
        node.meta.remove(f"{SBPS}/default.web")  # lost under a live pod
        await until(lambda: (node.tenant_pod().get("status") or {}).get("phase") == "Failed")
        st = node.tenant_pod()["status"]
        assert st["reason"] == "SandboxLost"
        assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "SandboxLost"
        await until(lambda: node.events("SandboxLost"))
        assert node.sandbox() is None  # a failed pod is not started again


async def test_a_missing_configmap_is_a_create_container_config_error_until_it_exists():
    node = Node()
    node.tenant.put(PODS, pod(env=[{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "k"}}}]))
    node.sync.queue.base_delay = 0.01
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: (node.tenant_pod().get("status") or {}).get("containerStatuses"))
        waiting = node.tenant_pod()["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting == {"reason": "CreateContainerConfigError", "message": 'configmap "late" not found'}
        assert node.sandbox() is None
        await until(lambda: node.events("Failed"))
        node.tenant.put("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "late"}, "data": {"k": "v"}})
        await until(lambda: node.sandbox() is not None, timeout=5)
        assert node.sandbox()["spec"]["containers"][0]["env"] == [{"name": "M", "value": "v"}]


async def test_a_pod_past_its_active_deadline_is_killed_and_fails_also_when_it_is_shortened():
    node = Node()
    node.tenant.put(PODS, {**pod(), "spec": {**pod()["spec"], "activeDeadlineSeconds": 3600}})
    running = {"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [
        {"name": "app", "ready": True, "started": True, "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]}
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        await node.meta.patch(f"{SBPS}/default.web/status", {"status": running})
        await until(lambda: (node.tenant_pod().get("status") or {}).get("phase") == "Running")
        assert node.tenant_pod()["status"]["startTime"]
        await asyncio.sleep(0.3)
        assert node.sandbox() is not None  # an hour to go
        # The apiserver allows a running pod's deadline to be shortened: the next pass sees it.
        await node.tenant.patch(f"{PODS}/web", {"spec": {"activeDeadlineSeconds": 1}})
        await until(lambda: node.sandbox() is None, timeout=3)
        await until(lambda: (node.tenant_pod().get("status") or {}).get("phase") == "Failed")
        st = node.tenant_pod()["status"]
        assert st["reason"] == "DeadlineExceeded"
        assert st["message"] == "Pod was active on the node longer than the specified deadline"
        term = st["containerStatuses"][0]["state"]["terminated"]
        assert term["reason"] == "ContainerStatusUnknown" and term["exitCode"] == 137
        (ev,) = node.events("DeadlineExceeded")
        assert ev["type"] == "Normal" and ev["message"] == st["message"]
        assert not node.events("SandboxLost")


def _reading_annotation(key: str) -> Node:
    """A node with a pod whose variable ANNOTATION reads the pod's annotation `key`."""
    node = Node()
    env = [{"name": "ANNOTATION", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{key}']"}}}]
    node.tenant.put(PODS, pod(env=env))
    return node


def _annotate(node, key: str, value: str) -> None:
    live = node.tenant_pod()
    node.tenant.put(PODS, {**live, "metadata": {**live["metadata"], "annotations": {key: value}}})


async def _report_config_error(node, **status) -> None:
    """The sandbox's report of a container it could not create for its configuration."""
    await node.meta.patch(f"{SBPS}/default.web/status", {"status": {"phase": "Pending", "containerStatuses": [
        {"name": "app", **status, "state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": 'subPath "/foo" must be relative'}}}]}})


async def test_a_config_error_before_any_start_is_retried_with_the_pods_environment_as_it_is_now():
    """The upstream Variable Expansion test: a subPathExpr reads an annotation the pod does
    not have yet (the sandbox reports CreateContainerConfigError); once it is added, the
    SandboxPod is made again with the new value, and the pod is not reported lost."""
    node = _reading_annotation("mysubpath")
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        first = node.sandbox()
        assert first["spec"]["containers"][0]["env"] == [{"name": "ANNOTATION", "value": ""}]
        await _report_config_error(node, restartCount=0)
        await until(lambda: ((node.tenant_pod().get("status") or {}).get("containerStatuses") or [{}])[0]
                    .get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError")
        assert node.sandbox()["metadata"]["uid"] == first["metadata"]["uid"]  # same environment: kept
        _annotate(node, "mysubpath", "mypath")
        await until(lambda: (node.sandbox() or first)["metadata"]["uid"] != first["metadata"]["uid"])
        assert node.sandbox()["spec"]["containers"][0]["env"] == [{"name": "ANNOTATION", "value": "mypath"}]
        assert (node.tenant_pod().get("status") or {}).get("phase") != "Failed" and not node.events("SandboxLost")


async def test_a_container_that_once_ran_keeps_its_sandboxpod_whatever_the_environment_says():
    node = _reading_annotation("a")
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        first = node.sandbox()["metadata"]["uid"]
        await _report_config_error(node, restartCount=1, lastState={"terminated": {"exitCode": 1}})
        _annotate(node, "a", "b")
        await asyncio.sleep(0.5)
        assert node.sandbox()["metadata"]["uid"] == first
