"""The virtual node's condition taints against an in-memory tenant apiserver: not-ready only
while Ready is False (the admission plugin's taint goes once Ready), unreachable while
Unknown, unschedulable while cordoned, and a user's taint is never touched, not even one
added between our read and our write."""
from operators.kubeclient.informer import Informer
from operators.virtualnode.controllers.nodetaints import TaintController, desired_taints, sync_taints
from operators.virtualnode.informers import name_of

from .fakekube import FakeKube, Tasks, until

NODE = "vn-c"
NODES = "/api/v1/nodes"
PATH = f"{NODES}/{NODE}"
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
USER = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def node(ready: str, taints: list[dict] | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "spec": {"taints": list(taints or []), **spec},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": ready}]}}


def keys(taints):
    return [(t["key"], t["effect"]) for t in taints or []]


def stored_keys(kube):
    return keys((kube.stored(PATH).get("spec") or {}).get("taints"))


def test_desired_taints_follow_ready_and_leave_other_taints_alone():
    assert keys(desired_taints(node("True", [USER, NOT_READY]))) == [("dedicated", "NoSchedule")]
    assert desired_taints(node("False", [NOT_READY, USER])) is None  # already right
    assert keys(desired_taints(node("False", [USER]))) == [("dedicated", "NoSchedule"),
                                                           ("node.kubernetes.io/not-ready", "NoSchedule")]
    assert keys(desired_taints(node("Unknown", [NOT_READY]))) == [("node.kubernetes.io/unreachable", "NoSchedule")]
    assert desired_taints(node("True", [USER])) is None
    # a user's NoExecute taint with an owned key is not ours to remove
    no_execute = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
    assert desired_taints(node("True", [no_execute])) is None
    assert keys(desired_taints(node("True", unschedulable=True))) == [("node.kubernetes.io/unschedulable",
                                                                        "NoSchedule")]
    assert desired_taints(node("True", [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
                               unschedulable=False)) == []


async def test_sync_removes_the_admission_taint_once_ready_and_keeps_a_user_taint():
    kube = FakeKube("tenant")
    kube.put(NODES, node("True", [NOT_READY, USER]))
    assert keys(await sync_taints(kube, PATH)) == [("dedicated", "NoSchedule")]
    assert stored_keys(kube) == [("dedicated", "NoSchedule")]
    assert await sync_taints(kube, PATH) is None  # nothing more to do: no write
    assert [c for c in kube.calls if c[0] == "patch"] == [("patch", PATH)]


async def test_a_taint_added_between_read_and_write_survives():
    kube = FakeKube("tenant")
    kube.put(NODES, node("True", [NOT_READY]))
    read = kube.get_or_none
    raced = []

    async def get_then_user_taints(path):
        obj = await read(path)
        if not raced:  # `kubectl taint` lands right after our first read
            raced.append(True)
            await kube.patch(PATH, {"spec": {"taints": [NOT_READY, USER]}})
        return obj

    kube.get_or_none = get_then_user_taints
    await sync_taints(kube, PATH)
    assert stored_keys(kube) == [("dedicated", "NoSchedule")]


async def test_the_controller_follows_the_node_as_it_changes():
    kube = FakeKube("tenant")
    kube.put(NODES, node("False", [NOT_READY]))
    informer = Informer(kube, NODES, name="node", key=name_of, params={"fieldSelector": f"metadata.name={NODE}"})
    controller = TaintController(kube, node=informer, node_name=NODE)
    async with Tasks() as tasks:
        tasks(informer)
        tasks(controller)
        await kube.patch(PATH + "/status", {"status": node("True")["status"]})
        await until(lambda: stored_keys(kube) == [])
        await kube.patch(PATH, {"spec": {"taints": [USER], "unschedulable": True}})  # kubectl taint + cordon
        await until(lambda: stored_keys(kube) == [("dedicated", "NoSchedule"),
                                                  ("node.kubernetes.io/unschedulable", "NoSchedule")])
        await kube.patch(PATH + "/status", {"status": node("False")["status"]})
        await until(lambda: ("node.kubernetes.io/not-ready", "NoSchedule") in stored_keys(kube))
        assert stored_keys(kube)[0] == ("dedicated", "NoSchedule")
