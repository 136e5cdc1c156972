"""The Informer on the in-memory apiserver: list, then watch; a 410 relist delivers what
happened while it was away, deletions included."""
import asyncio

from operators.kubeclient.informer import Informer
from operators.kubeclient.runner import Runner
from operators.kubeclient.client import ApiError

from .fakekube import FakeKube, Tasks, until

CM = "/api/v1/namespaces/default/configmaps"


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def recorder(informer):
    seen = []
    informer.handlers.append(lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"],
                                                                 (obj.get("data") or {}).get("v"))))
    return seen


async def test_list_then_watch_events_update_the_store():
    async with Tasks() as running:
        kube = FakeKube()
        kube.put(CM, cm("a", v="1"))
        inf = Informer(kube, "/api/v1/configmaps", name="cms", key=lambda o: o["metadata"]["name"])
        seen = recorder(inf)
        running(inf)
        await asyncio.wait_for(inf.synced.wait(), 2)
        assert inf.get("a")["data"] == {"v": "1"} and seen == [("ADDED", "a", "1")]

        await kube.create(CM, cm("b", v="2"))
        await kube.patch(f"{CM}/a", {"data": {"v": "3"}})
        await kube.delete(f"{CM}/b")
        await until(lambda: len(seen) == 4)
        assert seen[1:] == [("ADDED", "b", "2"), ("MODIFIED", "a", "3"), ("DELETED", "b", "2")]
        assert set(inf.store) == {"a"} and inf.get("a")["data"] == {"v": "3"}
        assert inf.healthy


async def test_a_410_relist_delivers_the_deletions_and_changes_missed():
    async with Tasks() as running:
        kube = FakeKube()
        for n in "abc":
            kube.put(CM, cm(n, v="1"))
        inf = Informer(kube, "/api/v1/configmaps", name="cms", key=lambda o: o["metadata"]["name"])
        seen = recorder(inf)
        running(inf)
        await asyncio.wait_for(inf.synced.wait(), 2)
        await until(lambda: ("watch", "/api/v1/configmaps") in kube.calls)
        lists = kube.calls.count(("list", "/api/v1/configmaps"))

        # Away: the watch ends, things change, and the history it would resume from is gone.
        kube.end_watches()
        kube.remove(f"{CM}/a")
        kube.put(CM, cm("b", v="2"))
        kube.compact()
        seen.clear()
        await until(lambda: kube.calls.count(("list", "/api/v1/configmaps")) > lists and len(seen) == 2)
        assert sorted(seen) == [("DELETED", "a", "1"), ("MODIFIED", "b", "2")]
        assert set(inf.store) == {"b", "c"}
        # Back on the watch after the relist.
        await kube.create(CM, cm("d", v="4"))
        await until(lambda: inf.get("d") is not None)


async def test_a_selector_limits_the_cache_and_put_if_newer_never_goes_back():
    async with Tasks() as running:
        kube = FakeKube()
        kube.put(CM, {**cm("mine"), "metadata": {"name": "mine", "labels": {"sk8s.io/cluster-uid": "u1"}}})
        kube.put(CM, {**cm("other"), "metadata": {"name": "other", "labels": {"sk8s.io/cluster-uid": "u2"}}})
        inf = Informer(kube, "/api/v1/configmaps", name="cms", key=lambda o: o["metadata"]["name"],
                       params={"labelSelector": "sk8s.io/cluster-uid=u1"})
        running(inf)
        await asyncio.wait_for(inf.synced.wait(), 2)
        assert set(inf.store) == {"mine"}
        old = inf.get("mine")
        newer = await kube.patch(f"{CM}/mine", {"data": {"v": "new"}})
        inf.put_if_newer(newer)
        assert inf.get("mine")["data"] == {"v": "new"}
        inf.put_if_newer(old)
        assert inf.get("mine")["data"] == {"v": "new"}


async def test_an_unreachable_apiserver_marks_the_informer_unhealthy_until_it_answers(monkeypatch):
    async with Tasks() as running:
        kube = FakeKube()
        real = kube.list_all
        failing = True

        async def list_all(path, params):
            if failing:
                raise ApiError(0, "Unreachable", "connection refused")
            return await real(path, params)
        monkeypatch.setattr(kube, "list_all", list_all)
        monkeypatch.setattr("operators.kubeclient.informer.BACKOFF_MAX", 0.01)
        inf = Informer(kube, "/api/v1/configmaps", name="cms", key=lambda o: o["metadata"]["name"])
        running(inf)
        await until(lambda: inf.last_error is not None)
        assert not inf.healthy and not inf.synced.is_set() and "connection refused" in inf.last_error
        failing = False
        await asyncio.wait_for(inf.synced.wait(), 3)
        assert inf.healthy


async def test_the_runner_retries_a_failing_key_with_back_off_and_requeues_conflicts_soon():
    class Stale(Exception):
        pass
    passes = []
    outcomes = {"a": [ApiError(500, "InternalError", "boom"), None], "b": [Stale(), None]}

    async def reconcile(key):
        passes.append(key)
        result = outcomes[key].pop(0)
        if result is not None:
            raise result
    runner = Runner("test", reconcile, workers=2, soon=(Stale,))
    runner.queue.base_delay = 0.01
    task = asyncio.create_task(runner.run())
    try:
        runner.queue.add("a")
        runner.queue.add("b")
        await until(lambda: passes.count("a") == 2 and passes.count("b") == 2)
        assert outcomes == {"a": [], "b": []}
        assert runner.queue._failures == {}  # a successful pass ends the back-off
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_virtual_node_owns_and_starts_every_informer(monkeypatch):
    """No controller makes (and so starts) an informer of its own: every one the virtual
    node's parts read is in the list VirtualNode.run starts, and has a handler."""
    from operators.virtualnode.app import VirtualNode
    from operators.virtualnode.options import Options
    made = []
    real_init = Informer.__init__

    def init(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)
    monkeypatch.setattr(Informer, "__init__", init)
    opts = Options(tenant_kubeconfig="t", meta_kubeconfig="m", meta_namespace="tenant-c", cluster="c",
                   cluster_uid="u1", node_name="vn-c", port=10250, address="127.0.0.1", tls_cert="", tls_key="",
                   client_ca="", max_pods=10, cpu="4", memory="8Gi", provider="local")
    node = VirtualNode(opts, FakeKube("tenant"), FakeKube("meta"), server_ctx=None)
    started = node.informers.early + node.informers.late
    assert made and sorted(map(id, made)) == sorted(map(id, started))
    assert all(i.handlers for i in started), [i.name for i in started if not i.handlers]
    # Pods feed the binder, pod sync and the zone's pod records, SandboxPods pod sync; meta
    # objects are this cluster's only.
    assert len(node.informers.pods.handlers) == 3 and len(node.informers.sandboxes.handlers) == 1
    assert node.informers.sandboxes.params == {"labelSelector": "sk8s.io/cluster-uid=u1"}
