"""The Binder against an in-memory tenant apiserver: it binds pods to the virtual node while
they fit the quota, refuses the rest as Unschedulable (condition and FailedScheduling event),
and binds a waiting pod once capacity is freed."""
from operators.kubeclient.events import EventRecorder
from operators.virtualnode.controllers.binder import Binder
from operators.virtualnode.informers import NodeInformers
from operators.virtualnode.mapping.quota import Capacity

from .fakekube import FakeKube, Tasks, until

NODE = "vn-c"
PODS = "/api/v1/namespaces/default/pods"


def pod(name, cpu="500m", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


def make(capacity: Capacity):
    tenant = FakeKube("tenant")
    inf = NodeInformers.create(tenant, FakeKube("meta"), meta_namespace="tenant-c", cluster_uid="u1")
    binder = Binder(tenant, pods=inf.pods, node_name=NODE, capacity=capacity,
                    node_labels={"kubernetes.io/hostname": NODE, "type": "virtual-kubelet"},
                    events=EventRecorder(tenant, component="t", host=NODE))
    return tenant, inf.pods, binder


def node_of(tenant, name):
    return (tenant.stored(f"{PODS}/{name}").get("spec") or {}).get("nodeName")


def scheduled(tenant, name):
    conds = (tenant.stored(f"{PODS}/{name}").get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "PodScheduled"), None)


def events(tenant, reason):
    return [o for k, o in tenant.objects.items() if k[1] == "events" and o["reason"] == reason]


async def test_binds_a_pod_to_the_node_and_says_so():
    tenant, pods, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    tenant.put(PODS, pod("a"))
    tenant.put(PODS, pod("other-scheduler", schedulerName="my-scheduler"))
    tenant.put(PODS, pod("gated", schedulingGates=[{"name": "wait"}]))
    async with Tasks() as tasks:
        tasks(pods)
        tasks(binder)
        await until(lambda: node_of(tenant, "a") == NODE)
        await until(lambda: events(tenant, "Scheduled"))
        assert events(tenant, "Scheduled")[0]["message"] == f"Successfully assigned default/a to {NODE}"
        assert node_of(tenant, "other-scheduler") is None and node_of(tenant, "gated") is None


async def test_refuses_beyond_the_quota_as_unschedulable_and_binds_once_capacity_is_freed():
    tenant, pods, binder = make(Capacity(pods=10, cpu_millis=1000, memory=8 << 30))
    tenant.put(PODS, pod("first", cpu="600m", priority=10))
    tenant.put(PODS, pod("second", cpu="600m"))
    async with Tasks() as tasks:
        tasks(pods)
        tasks(binder)
        await until(lambda: node_of(tenant, "first") == NODE)
        await until(lambda: scheduled(tenant, "second") is not None)
        cond = scheduled(tenant, "second")
        assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
        assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu (cluster quota cpu=1, pod requests 600m)."
        assert node_of(tenant, "second") is None
        assert [e["message"] for e in events(tenant, "FailedScheduling")] == [cond["message"]]

        tenant.remove(f"{PODS}/first")
        await until(lambda: node_of(tenant, "second") == NODE)


async def test_a_node_selector_that_does_not_match_is_unschedulable():
    tenant, pods, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    tenant.put(PODS, pod("gpu", nodeSelector={"accelerator": "gpu"}))
    tenant.put(PODS, pod("here", nodeSelector={"type": "virtual-kubelet"}))
    async with Tasks() as tasks:
        tasks(pods)
        tasks(binder)
        await until(lambda: node_of(tenant, "here") == NODE and scheduled(tenant, "gpu") is not None)
        assert "didn't match Pod's node affinity/selector" in scheduled(tenant, "gpu")["message"]
        assert node_of(tenant, "gpu") is None
