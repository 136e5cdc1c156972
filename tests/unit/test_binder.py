"""The Binder against an in-memory tenant apiserver: it binds pods to the virtual node while
they fit the quota, refuses the rest as Unschedulable (condition and FailedScheduling event),
and binds a waiting pod once capacity is freed."""
import asyncio

from operators.kubeclient.events import EventRecorder
from operators.virtualnode.controllers.binder import Binder, taint_mismatch, tolerates
from operators.virtualnode.informers import NodeInformers
from operators.virtualnode.mapping.quota import Capacity

from .fakekube import FakeKube, Tasks, until

NODE = "vn-c"
PODS = "/api/v1/namespaces/default/pods"


def pod(name, cpu="500m", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


NODES = "/api/v1/nodes"


class Caches:
    """The binder's informers (pods and its Node), run as one."""

    def __init__(self, *informers):
        self.informers = informers

    async def run(self):
        await asyncio.gather(*(i.run() for i in self.informers))


def node(ready="True", taints=None, **spec):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "spec": {**({"taints": taints} if taints is not None else {}), **spec},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def make(capacity: Capacity, registered: dict | None = None):
    """A tenant apiserver with the virtual node registered (Ready, untainted unless given)."""
    tenant = FakeKube("tenant")
    tenant.put(NODES, registered or node())
    inf = NodeInformers.create(tenant, FakeKube("meta"), meta_namespace="tenant-c", cluster_uid="u1",
                               node_name=NODE)
    binder = Binder(tenant, pods=inf.pods, node=inf.node, node_name=NODE, capacity=capacity,
                    node_labels={"kubernetes.io/hostname": NODE, "type": "virtual-kubelet"},
                    events=EventRecorder(tenant, component="t", host=NODE))
    return tenant, Caches(inf.pods, inf.node), binder


def node_of(tenant, name):
    return (tenant.stored(f"{PODS}/{name}").get("spec") or {}).get("nodeName")


def scheduled(tenant, name):
    conds = (tenant.stored(f"{PODS}/{name}").get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "PodScheduled"), None)


def events(tenant, reason):
    return [o for k, o in tenant.objects.items() if k[1] == "events" and o["reason"] == reason]


async def test_binds_a_pod_to_the_node_and_says_so():
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    tenant.put(PODS, pod("a"))
    tenant.put(PODS, pod("other-scheduler", schedulerName="my-scheduler"))
    tenant.put(PODS, pod("gated", schedulingGates=[{"name": "wait"}]))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: node_of(tenant, "a") == NODE)
        await until(lambda: events(tenant, "Scheduled"))
        assert events(tenant, "Scheduled")[0]["message"] == f"Successfully assigned default/a to {NODE}"
        assert node_of(tenant, "other-scheduler") is None and node_of(tenant, "gated") is None


async def test_refuses_beyond_the_quota_as_unschedulable_and_binds_once_capacity_is_freed():
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=1000, memory=8 << 30))
    tenant.put(PODS, pod("first", cpu="600m", priority=10))
    tenant.put(PODS, pod("second", cpu="600m"))
    async with Tasks() as tasks:
        tasks(caches)
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
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    tenant.put(PODS, pod("gpu", nodeSelector={"accelerator": "gpu"}))
    tenant.put(PODS, pod("here", nodeSelector={"type": "virtual-kubelet"}))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: node_of(tenant, "here") == NODE and scheduled(tenant, "gpu") is not None)
        assert "didn't match Pod's node affinity/selector" in scheduled(tenant, "gpu")["message"]
        assert node_of(tenant, "gpu") is None


async def test_a_pod_waits_for_a_taint_it_does_not_tolerate_and_binds_once_it_is_gone():
    user = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30),
                                  node(taints=[user, {"key": "soft", "effect": "PreferNoSchedule"}]))
    tenant.put(PODS, pod("plain"))
    tenant.put(PODS, pod("tolerant", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                                   "effect": "NoSchedule"}]))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: node_of(tenant, "tolerant") == NODE and scheduled(tenant, "plain") is not None)
        cond = scheduled(tenant, "plain")
        assert cond["message"] == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
        assert node_of(tenant, "plain") is None
        await tenant.patch(f"{NODES}/{NODE}", {"spec": {"taints": None}})
        await until(lambda: node_of(tenant, "plain") == NODE)


async def test_a_not_ready_node_and_a_cordoned_node_bind_nothing_untolerated():
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30),
                                  node("False", [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]))
    tenant.put(PODS, pod("waits"))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: scheduled(tenant, "waits") is not None)
        assert "untolerated taint {node.kubernetes.io/not-ready: }" in scheduled(tenant, "waits")["message"]
        await tenant.patch(f"{NODES}/{NODE}", {"spec": {"taints": [], "unschedulable": True}})
        await until(lambda: "were unschedulable" in scheduled(tenant, "waits")["message"])
        await tenant.patch(f"{NODES}/{NODE}", {"spec": {"unschedulable": None}})
        await until(lambda: node_of(tenant, "waits") == NODE)


def test_tolerations_match_as_the_api_defines():
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert tolerates({"operator": "Exists"}, taint)  # empty key + Exists: everything
    assert tolerates({"key": "k", "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"key": "k", "value": "v"}, taint)  # operator defaults to Equal
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": "other", "operator": "Exists"}, taint)
    cordoned = {"spec": {"unschedulable": True}}
    assert taint_mismatch({"spec": {}}, cordoned) == "0/1 nodes are available: 1 node(s) were unschedulable."
    assert taint_mismatch({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                                     "operator": "Exists"}]}}, cordoned) is None
    assert taint_mismatch({"spec": {}}, {"spec": {"taints": [taint]}}) is not None  # NoExecute also filters


def pinned(to: str) -> dict:
    """The affinity the DaemonSet controller gives each of its pods."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [to]}]}]}}}


async def test_required_node_affinity_is_honoured_and_a_daemonset_pod_binds_to_its_node():
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    tenant.put(PODS, pod("ds-here", affinity=pinned(NODE)))
    tenant.put(PODS, pod("ds-elsewhere", affinity=pinned("another-node")))
    zone = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z9"]}]}]}}}
    tenant.put(PODS, pod("zoned", affinity=zone))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: node_of(tenant, "ds-here") == NODE)
        await until(lambda: scheduled(tenant, "ds-elsewhere") is not None and scheduled(tenant, "zoned") is not None)
        for name in ("ds-elsewhere", "zoned"):
            assert "didn't match Pod's node affinity/selector" in scheduled(tenant, name)["message"]
            assert node_of(tenant, name) is None


async def test_a_pod_whose_binding_was_lost_is_bound_by_the_resync(monkeypatch):
    """A 404 from a tenant apiserver still starting drops the pod from the binder's pending
    set; the periodic resync takes it from the cache again and binds it."""
    from operators.kubeclient.client import ApiError
    from operators.virtualnode.controllers import binder as binder_mod
    monkeypatch.setattr(binder_mod, "RESYNC_SECONDS", 0.2)
    tenant, caches, binder = make(Capacity(pods=10, cpu_millis=4000, memory=8 << 30))
    real_create, failures = tenant.create, []

    async def create(path, body, **kw):
        if path.endswith("/binding") and not failures:
            failures.append(path)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await real_create(path, body, **kw)
    monkeypatch.setattr(tenant, "create", create)
    tenant.put(PODS, pod("a"))
    async with Tasks() as tasks:
        tasks(caches)
        tasks(binder)
        await until(lambda: failures)
        assert node_of(tenant, "a") is None
        await until(lambda: node_of(tenant, "a") == NODE, timeout=5)
