"""Several virtual nodes per tenant (spec.virtualNodes): names, zones, the quota split, the
options, the plane's kube-scheduler, and one virtual-node process serving all its Nodes."""
import asyncio
import dataclasses
import ssl
from pathlib import Path

import pytest

from operators.models.contracts import VIRTUAL_NODE_NAME, virtual_node_names
from operators.models.serverlesscluster import ServerlessClusterSpec
from operators.quantity import cpu_cores, memory_bytes
from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import planes
from operators.serverlesscluster.status import cluster_status
from operators.virtualnode.app import VirtualNode
from operators.virtualnode.controllers.node import node_labels, node_status
from operators.virtualnode.nodeset import ZONE_LABEL, shares, split, zones
from operators.virtualnode.options import Options, parse

from .fakekube import FakeKube, until


def test_node_zero_keeps_its_name_and_the_others_are_numbered():
    assert virtual_node_names(1) == [VIRTUAL_NODE_NAME]
    assert virtual_node_names(3) == ["virtual-node", "virtual-node-1", "virtual-node-2"]
    assert virtual_node_names(2, "vn") == ["vn", "vn-1"]


def test_one_zone_per_node_and_none_for_a_single_node():
    assert zones("local", 1) == [""]
    assert zones("local", 3) == ["local-a", "local-b", "local-c"]
    assert zones("cn-hangzhou", 2) == ["cn-hangzhou-a", "cn-hangzhou-b"]


def test_the_split_adds_up_and_gives_the_remainder_to_the_first_nodes():
    assert split(10, 3) == [4, 3, 3]
    assert split(9, 3) == [3, 3, 3]
    assert split(2, 3) == [1, 1, 0]
    for total in (0, 1, 7, 100, 1234567):
        for n in range(1, 6):
            parts = split(total, n)
            assert sum(parts) == total and max(parts) - min(parts) <= 1


def test_the_quota_is_split_and_unlimited_stays_unlimited():
    three = shares(first="vn", count=3, cpu_millis=10000, memory_bytes=memory_bytes("8Gi"), pods=10,
                   cpu="10", memory="8Gi")
    assert [s.name for s in three] == ["vn", "vn-1", "vn-2"]
    assert [s.zone for s in three] == ["local-a", "local-b", "local-c"]
    assert [s.cpu for s in three] == ["3334m", "3333m", "3333m"]
    assert [s.pods for s in three] == [4, 3, 3]
    assert sum(memory_bytes(s.memory) for s in three) == memory_bytes("8Gi")
    assert sum(cpu_cores(s.cpu) for s in three) == 10
    unlimited = shares(first="vn", count=2, cpu_millis=1000000, memory_bytes=memory_bytes("4Ti"), pods=100,
                       cpu="1000", memory="4Ti", cpu_limited=False, memory_limited=False)
    assert [(s.cpu, s.memory, s.pods) for s in unlimited] == [("1000", "4Ti", 50), ("1000", "4Ti", 50)]
    one = shares(first="vn", count=1, cpu_millis=4000, memory_bytes=1, pods=10, cpu="4", memory="8Gi")
    assert [(s.name, s.zone, s.cpu, s.memory, s.pods) for s in one] == [("vn", "", "4", "8Gi", 10)]


def _opts(tmp_path, *extra):
    for f in ("t", "m", "c", "k", "ca"):
        (tmp_path / f).write_text("x")
    return parse(["--tenant-kubeconfig", str(tmp_path / "t"), "--meta-kubeconfig", str(tmp_path / "m"),
                  "--meta-namespace", "tenant-a", "--cluster", "a", "--cluster-uid", "u", "--port", "10250",
                  "--tls-cert", str(tmp_path / "c"), "--tls-key", str(tmp_path / "k"),
                  "--client-ca", str(tmp_path / "ca"), *extra])


def test_options_for_several_nodes(tmp_path, capsys):
    one = _opts(tmp_path, "--cpu", "4")
    assert (one.virtual_nodes, one.scheduler, one.node_names) == (1, "builtin", ["virtual-node"])
    three = _opts(tmp_path, "--virtual-nodes", "3", "--scheduler=external", "--zone-base", "cn-hangzhou",
                  "--max-pods", "10", "--cpu", "3", "--memory", "3Gi")
    assert three.node_names == ["virtual-node", "virtual-node-1", "virtual-node-2"]
    assert [n.zone for n in three.nodes] == ["cn-hangzhou-a", "cn-hangzhou-b", "cn-hangzhou-c"]
    assert [n.cpu for n in three.nodes] == ["1000m"] * 3 and [n.memory for n in three.nodes] == ["1073741824"] * 3
    for bad, message in ((["--virtual-nodes", "3"], "needs --scheduler=external"),
                         (["--virtual-nodes", "6", "--scheduler=external"], "--virtual-nodes: must be 1 to 5"),
                         (["--virtual-nodes", "0"], "--virtual-nodes: must be 1 to 5"),
                         (["--virtual-nodes", "3", "--scheduler=external", "--max-pods", "2"], "--max-pods: 2"),
                         (["--zone-base", "Not A Zone"], "--zone-base"),
                         (["--scheduler", "mine"], "--scheduler")):
        with pytest.raises(SystemExit) as e:
            _opts(tmp_path, *bad)
        assert e.value.code == 2 and message in capsys.readouterr().err, bad


def test_each_node_labels_its_zone_and_advertises_its_share(tmp_path):
    assert ZONE_LABEL not in node_labels("virtual-node")
    labels = node_labels("virtual-node-1", "local-b")
    assert labels[ZONE_LABEL] == "local-b" and labels["kubernetes.io/hostname"] == "virtual-node-1"
    opts = _opts(tmp_path, "--virtual-nodes", "2", "--scheduler=external", "--max-pods", "5", "--cpu", "1")
    second = opts.nodes[1]
    st = node_status(opts, kubelet_version="v1.37.2", ready=True, share=second)
    assert (st["capacity"]["cpu"], st["capacity"]["pods"]) == ("500m", "2")
    assert {"type": "Hostname", "address": "virtual-node-1"} in st["addresses"]
    # One endpoint for all of them: the apiserver reaches every node's pods at the same kubelet.
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    first = node_status(opts, kubelet_version="v1.37.2", ready=True)
    assert first["capacity"]["pods"] == "3" and {"type": "Hostname", "address": "virtual-node"} in first["addresses"]


T = cp.Tenant(directory=Path("/x/p1"), ports=cp.TenantPorts(21000, 21001), etcd_url="https://127.0.0.1:2379",
              etcd_prefix="/sk8s/tenants/p1", name="c1", namespace="team", uid="u-1",
              sandbox_namespace="tenant-c1-u-1", max_pods=7, cpu="4", memory="8Gi")


def test_a_single_node_plane_runs_no_scheduler_and_its_virtual_node_is_as_before():
    from operators.serverlesscluster import cluster
    assert not T.runs_scheduler and T.node_names == ["virtual-node"]
    assert "kube-scheduler" not in cluster.components(T)
    args = cp.virtual_node_args(T, Path("/meta.kubeconfig"))
    assert not [a for a in args if a.startswith(("--virtual-nodes", "--scheduler", "--zone-base"))]


def test_several_nodes_run_the_scheduler_and_tell_the_virtual_node_so():
    from operators.serverlesscluster import cluster
    t = dataclasses.replace(T, virtual_nodes=3, region="cn-hangzhou")
    assert t.runs_scheduler and t.node_names == ["virtual-node", "virtual-node-1", "virtual-node-2"]
    assert cluster.components(t) == list(planes.STOP_ORDER)
    assert planes.STOP_ORDER.index("kube-scheduler") < planes.STOP_ORDER.index("kube-apiserver")
    args = cp.virtual_node_args(t, Path("/meta.kubeconfig"))
    assert {"--virtual-nodes=3", "--scheduler=external", "--zone-base=cn-hangzhou"} <= set(args)
    sched = cp.scheduler_args(Path("/bin"), t)
    assert sched[0] == "/bin/kube-scheduler"
    assert {"--kubeconfig=/x/p1/scheduler.kubeconfig", "--leader-elect=false", "--secure-port=0"} <= set(sched)
    local = cp.virtual_node_args(dataclasses.replace(t, region=""), Path("/m"))
    assert "--zone-base=local" in local


def test_the_scheduler_certificate_is_issued_once_by_the_plane_ca(tmp_path):
    from cryptography import x509
    from operators.serverlesscluster.tenant_pki import ensure_scheduler_client, ensure_tenant_pki
    ensure_tenant_pki(tmp_path, "t", "10.96.0.1")
    assert not (tmp_path / "scheduler.crt").exists()  # a single-node plane has none
    ensure_scheduler_client(tmp_path)
    pem = (tmp_path / "scheduler.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=system:kube-scheduler" and cert.issuer == ca.subject
    ensure_scheduler_client(tmp_path)
    assert (tmp_path / "scheduler.crt").read_bytes() == pem


def test_spec_and_status():
    assert ServerlessClusterSpec.model_validate({}).virtualNodes == 1
    assert ServerlessClusterSpec.model_validate({"virtualNodes": 3}).virtualNodes == 3
    with pytest.raises(ValueError):
        ServerlessClusterSpec.model_validate({"virtualNodes": 6})
    st = cluster_status(generation=1, prev={}, control_plane=True, node=True, endpoint="https://e", secret="s",
                        sandbox_namespace="n", version="v1.37.2", node_names=["virtual-node", "virtual-node-1"])
    assert st["nodeName"] == "virtual-node" and st["nodeNames"] == ["virtual-node", "virtual-node-1"]
    one = cluster_status(generation=1, prev={}, control_plane=True, node=True, endpoint="https://e", secret="s",
                         sandbox_namespace="n", version="v1.37.2")
    assert one["nodeName"] == "virtual-node" and one["nodeNames"] == ["virtual-node"]


def test_the_crd_makes_virtual_nodes_immutable():
    from operators import crdgen
    import yaml
    crd = yaml.safe_load(crdgen.expected_files()["sk8s.io_serverlessclusters.yaml"])
    field = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["virtualNodes"]
    assert field["default"] == 1 and (field["minimum"], field["maximum"]) == (1, 5)
    assert {"rule": "self == oldSelf", "message": "spec.virtualNodes is immutable"} in field["x-kubernetes-validations"]


META = "/apis/sk8s.io/v1alpha1/namespaces/tenant-c"


async def test_one_process_serves_three_nodes_and_binds_nothing_itself():
    opts = Options(tenant_kubeconfig="t", meta_kubeconfig="m", meta_namespace="tenant-c", cluster="c",
                   cluster_uid="u1", node_name="vn", port=0, address="127.0.0.1", tls_cert="", tls_key="",
                   client_ca="", max_pods=9, cpu="3", memory="3Gi", provider="none", virtual_nodes=3,
                   scheduler="external")
    tenant, meta = FakeKube("tenant"), FakeKube("meta")
    node = VirtualNode(opts, tenant, meta, ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    task = asyncio.create_task(node.run())
    try:
        await until(lambda: all(tenant.stored(f"/api/v1/nodes/{n}") for n in ("vn", "vn-1", "vn-2")), timeout=10)
        zone = {n: tenant.stored(f"/api/v1/nodes/{n}")["metadata"]["labels"][ZONE_LABEL] for n in ("vn", "vn-2")}
        assert zone == {"vn": "local-a", "vn-2": "local-c"}
        assert tenant.stored("/api/v1/nodes/vn-1")["status"]["capacity"]["cpu"] == "1000m"
        await until(lambda: tenant.stored("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/vn-2")
                    is not None, timeout=10)
        # A pod the scheduler bound to the third node runs here; an unbound one waits for it.
        tenant.put("/api/v1/namespaces/default/pods", {"metadata": {"name": "on2"}, "spec": {
            "nodeName": "vn-2", "containers": [{"name": "a", "image": "nginx"}]}})
        tenant.put("/api/v1/namespaces/default/pods", {"metadata": {"name": "unbound"}, "spec": {
            "containers": [{"name": "a", "image": "nginx"}]}})
        tenant.put("/api/v1/namespaces/default/pods", {"metadata": {"name": "elsewhere"}, "spec": {
            "nodeName": "other-node", "containers": [{"name": "a", "image": "nginx"}]}})
        await until(lambda: meta.stored(f"{META}/sandboxpods/default.on2") is not None, timeout=10)
        assert node.lookup("default", "on2")[0]["metadata"]["name"] == "on2"
        assert node.lookup("default", "elsewhere") == (None, None)
        await asyncio.sleep(0.3)
        assert not tenant.stored("/api/v1/namespaces/default/pods/unbound")["spec"].get("nodeName")
        assert meta.stored(f"{META}/sandboxpods/default.elsewhere") is None
        assert node.binder is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_taint_controller_keeps_every_node_of_the_process_and_no_other():
    from operators.kubeclient.informer import Informer
    from operators.virtualnode.controllers.nodetaints import TaintController
    from operators.virtualnode.informers import name_of
    from .fakekube import Tasks
    not_ready = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}

    def node(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": [not_ready]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    def taints(name: str) -> list:
        return tenant.stored(f"/api/v1/nodes/{name}")["spec"].get("taints") or []

    tenant = FakeKube("tenant")
    for name in ("vn", "vn-1", "someone-else"):
        tenant.put("/api/v1/nodes", node(name))
    informer = Informer(tenant, "/api/v1/nodes", name="node", key=name_of)
    controller = TaintController(tenant, node=informer, node_names=["vn", "vn-1"])
    async with Tasks() as tasks:
        tasks(informer)
        tasks(controller)
        await until(lambda: taints("vn") == [] and taints("vn-1") == [])
        await asyncio.sleep(0.2)
        assert taints("someone-else") == [not_ready]


def test_sk8s_status_lists_the_scheduler_of_a_plane_with_several_nodes_only(tmp_path, monkeypatch):
    import json
    from operators.serverlesscluster import plane_status
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    one = planes.new_plane(claim_for="uid-1")
    (one.directory / "virtual-node.args").write_text(json.dumps(["--cluster=c1", "--port=1"]))
    three = planes.new_plane(claim_for="uid-3")
    (three.directory / "virtual-node.args").write_text(json.dumps(
        ["--cluster=c3", "--port=1", "--virtual-nodes=3", "--scheduler=external"]))
    rows = asyncio.run(plane_status.all_rows({}, timeout=0.1))
    components = {p: [r.component for r in rows if r.plane == p] for p in (one.id, three.id)}
    assert components[one.id] == ["kube-apiserver", "kube-controller-manager", "virtual-node"]
    assert components[three.id] == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "virtual-node"]
    assert next(r for r in rows if r.component == "kube-scheduler").health == "down"  # nothing runs here


async def test_an_event_on_a_pod_names_the_node_it_is_bound_to():
    from operators.kubeclient.events import EventRecorder
    tenant = FakeKube("tenant")
    rec = EventRecorder(tenant, component="c", host="vn", hosts=frozenset({"vn", "vn-1"}))
    for name, node in (("on1", "vn-1"), ("unbound", None), ("stranger", "elsewhere")):
        rec.emit({"metadata": {"name": name, "namespace": "default", "uid": name},
                  "spec": {"nodeName": node} if node else {}}, "Normal", "R", "m")

    def events():
        return [o for k, o in tenant.objects.items() if k[1] == "events"]
    await until(lambda: len(events()) == 3)
    hosts = {e["involvedObject"]["name"]: e["source"]["host"] for e in events()}
    assert hosts == {"on1": "vn-1", "unbound": "vn", "stranger": "vn"}
