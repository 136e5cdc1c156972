"""The whole virtual node (app.VirtualNode.run) on in-memory tenant and meta apiservers:
it registers its Node, binds a pod and creates its SandboxPod, serves a Service, and stops
at once when cancelled (a cluster's deletion waits for that)."""
import asyncio
import ssl
import time

from operators.virtualnode.app import VirtualNode
from operators.virtualnode.options import Options

from .fakekube import FakeKube, until

META = "/apis/sk8s.io/v1alpha1/namespaces/tenant-c"


async def test_the_virtual_node_runs_its_controllers_on_its_informers_and_stops_promptly():
    opts = Options(tenant_kubeconfig="t", meta_kubeconfig="m", meta_namespace="tenant-c", cluster="c",
                   cluster_uid="u1", node_name="vn-c", port=0, address="127.0.0.1", tls_cert="", tls_key="",
                   # No provider: logs are not served, and nothing is written to this host's sk8s home.
                   client_ca="", max_pods=10, cpu="4", memory="8Gi", provider="none")
    tenant, meta = FakeKube("tenant"), FakeKube("meta")
    node = VirtualNode(opts, tenant, meta, ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    task = asyncio.create_task(node.run())
    try:
        tenant.put("/api/v1/namespaces/default/pods",
                   {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}})
        tenant.put("/api/v1/namespaces/default/services", {"metadata": {"name": "s"}, "spec": {
            "type": "ClusterIP", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "targetPort": 80}]}})
        await until(lambda: meta.stored(f"{META}/sandboxpods/default.web") is not None, timeout=10)
        assert tenant.stored("/api/v1/namespaces/default/pods/web")["spec"]["nodeName"] == "vn-c"
        assert tenant.stored("/api/v1/nodes/vn-c") is not None
        await until(lambda: meta.stored(f"{META}/servicelbs/default.s") is not None, timeout=10)
        assert not task.done()
    finally:
        t0 = time.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert time.monotonic() - t0 < 2
    assert task.cancelled()
