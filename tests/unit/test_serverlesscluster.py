"""ServerlessCluster: control-plane builders, standby planes, status (pure or on a temp dir)."""
from pathlib import Path

import pytest

from operators import config
from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import planes
from operators.serverlesscluster.status import cluster_status, stopped_status, usage
from operators.tenancy import sandbox_namespace

T = cp.Tenant(directory=Path("/x/p1"), ports=cp.TenantPorts(21000, 21001), etcd_url="https://127.0.0.1:2379",
              etcd_prefix="/sk8s/tenants/p1", name="c1", namespace="team", uid="u-1",
              sandbox_namespace="tenant-c1-u-1", max_pods=7, cpu="4", memory="8Gi")


def test_apiserver_uses_its_own_prefix_ca_and_kubelet_client():
    args = cp.apiserver_args(Path("/bin"), T)
    assert "--etcd-prefix=/sk8s/tenants/p1" in args and "--secure-port=21000" in args
    assert "--client-ca-file=/x/p1/pki/ca.crt" in args
    assert "--kubelet-client-certificate=/x/p1/pki/apiserver-kubelet-client.crt" in args
    assert {"--etcd-servers=https://127.0.0.1:2379", "--etcd-certfile=/x/p1/pki/etcd-client.crt",
            "--etcd-cafile=/x/p1/pki/etcd-ca.crt"} <= set(args)


def test_controller_manager_never_evicts_from_the_virtual_node():
    args = cp.controller_manager_args(Path("/bin"), T)
    controllers = next(a for a in args if a.startswith("--controllers=")).split("=", 1)[1].split(",")
    assert "node-lifecycle-controller" not in controllers and "taint-eviction-controller" not in controllers
    assert {"deployment-controller", "replicaset-controller", "job-controller",
            "garbage-collector-controller"} <= set(controllers)


def test_lean_planes_collect_garbage_sooner_and_the_baseline_is_as_before(monkeypatch):
    # GOGC=25: a Go process keeps 1.25x its live heap instead of 1.5x; the soft limits are
    # unchanged (well above an idle heap, so no collection storm).
    assert cp.apiserver_env(True) == {"GOMEMLIMIT": "200MiB", "GOGC": "25"}
    assert cp.controller_manager_env(True) == {"GOMEMLIMIT": "64MiB", "GOGC": "25"}
    assert cp.apiserver_env(False) == {"GOMEMLIMIT": "200MiB", "GOGC": "50"}
    assert cp.controller_manager_env(False) == {"GOMEMLIMIT": "64MiB", "GOGC": "50"}
    monkeypatch.delenv("SK8S_TENANT_LEAN", raising=False)
    assert config.lean_planes() is True
    monkeypatch.setenv("SK8S_TENANT_LEAN", "0")
    assert config.lean_planes() is False


def test_virtual_node_gets_quotas_and_identity():
    args = cp.virtual_node_args(T, Path("/meta.kubeconfig"))
    assert {"--max-pods=7", "--cpu=4", "--memory=8Gi", "--cluster=c1", "--cluster-uid=u-1",
            "--meta-namespace=tenant-c1-u-1", "--port=21001"} <= set(args)


def test_sandbox_namespace_is_a_dns_label():
    ns = sandbox_namespace("x" * 60, "0123456789abcdef")
    assert len(ns) <= 63 and ns.endswith("-01234567")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    return tmp_path


def test_a_plane_is_claimed_once(home):
    plane = planes.new_plane()
    planes.mark_warm(plane)
    assert planes.standby() == [plane]
    assert planes.try_claim(plane, "uid-a") is True
    assert planes.try_claim(plane, "uid-b") is False
    assert planes.find_claimed("uid-a").id == plane.id and planes.standby() == []


def test_unwarmed_planes_are_not_offered(home):
    planes.new_plane()
    assert planes.standby() == [] and len(planes.standby(ready_only=False)) == 1


def test_status_conditions_and_phase():
    st = cluster_status(generation=2, prev={}, control_plane=True, node=False, endpoint="https://e",
                        secret="c1-kubeconfig", sandbox_namespace="ns", version="v1.37.2")
    conds = {c["type"]: c for c in st["conditions"]}
    assert st["phase"] == "Provisioning" and conds["ControlPlaneReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "WaitingForVirtualNode"
    ok = cluster_status(generation=2, prev=st, control_plane=True, node=True, endpoint="https://e",
                        secret="c1-kubeconfig", sandbox_namespace="ns", version="v1.37.2")
    assert ok["phase"] == "Ready" and all(c["observedGeneration"] == 2 for c in ok["conditions"])


def test_a_ready_cluster_stopped_by_sk8s_down_says_so_and_keeps_its_other_conditions():
    ready = cluster_status(generation=3, prev={}, control_plane=True, node=True, endpoint="https://e",
                           secret="c1-kubeconfig", sandbox_namespace="ns", version="v1.37.2")
    patch = stopped_status(ready, 3)
    conds = {c["type"]: c for c in patch["conditions"]}
    assert patch["phase"] == "Provisioning" and patch["message"] == "sk8s is down"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "Stopped"
    assert conds["Ready"]["observedGeneration"] == 3 and len(patch["conditions"]) == 3
    assert conds["ControlPlaneReady"] == next(c for c in ready["conditions"] if c["type"] == "ControlPlaneReady")
    provisioning = cluster_status(generation=3, prev={}, control_plane=False, node=False, endpoint=None,
                                  secret=None, sandbox_namespace="ns", version="v1.37.2")
    assert stopped_status(provisioning, 3) is None  # only a Ready cluster is marked


def test_usage_counts_live_pods_and_requests():
    def sbp(phase, cpu, mem, limits_only=False):
        res = {"limits": {"cpu": cpu, "memory": mem}} if limits_only else {"requests": {"cpu": cpu, "memory": mem}}
        return {"status": {"phase": phase}, "spec": {"containers": [{"name": "a", "resources": res}]}}
    u = usage([sbp("Running", "500m", "64Mi"), sbp("Pending", "1", "1Gi", limits_only=True),
               sbp("Succeeded", "8", "8Gi")])
    assert u == {"pods": 2, "requestedCPU": "1500m", "requestedMemory": "1088Mi"}


def test_tenant_for_maps_a_cluster_onto_its_plane(tmp_path):
    from operators.serverlesscluster import cluster
    plane = planes.Plane(tmp_path, "p1", 6443, 10250, "/sk8s/tenants/p1")
    body = {"metadata": {"name": "team-a", "namespace": "default", "uid": "0123456789abcdef"},
            "spec": {"quotas": {"maxPods": 7, "cpu": "3"}}}
    t = cluster.tenant_for(body, plane)
    assert (t.name, t.namespace, t.uid) == ("team-a", "default", "0123456789abcdef")
    assert t.sandbox_namespace == sandbox_namespace("team-a", "0123456789abcdef")
    assert (t.max_pods, t.cpu, t.ports.apiserver, t.etcd_prefix) == (7, "3", 6443, "/sk8s/tenants/p1")
    assert t.directory == tmp_path


class _Procs:
    """ProcessSet's start/stop, recorded (nothing is run)."""
    def __init__(self):
        self.calls = []

    def start(self, name, argv, **_):
        self.calls.append(("start", name))

    def stop(self, name, **_):
        self.calls.append(("stop", name))


def test_virtual_node_args_of_an_earlier_version_are_rewritten_and_the_node_restarted(tmp_path, monkeypatch):
    import json
    from operators.serverlesscluster import cluster
    from operators.serverlesscluster.runners import HostRunner
    plane = planes.Plane(tmp_path, "p1", 6443, 10250, "/sk8s/tenants/p1")
    t = cluster.tenant_for({"metadata": {"name": "team-a", "namespace": "default", "uid": "0123456789abcdef"},
                            "spec": {}}, plane)
    procs = _Procs()
    monkeypatch.setattr(HostRunner, "processes", lambda _self, _t: procs)
    (tmp_path / "meta.kubeconfig").write_text("{}")
    args_file = tmp_path / "virtual-node.args"
    wanted = cp.virtual_node_args(t, tmp_path / "meta.kubeconfig")

    HostRunner()._virtual_node(t)  # claim: written, nothing to stop
    assert json.loads(args_file.read_text()) == wanted and procs.calls == [("start", "virtual-node")]

    procs.calls.clear()
    HostRunner()._virtual_node(t)  # resume with the same version: left as it runs
    assert procs.calls == [("start", "virtual-node")]

    # an earlier version's arguments, without the egress socket its apiserver now dials
    args_file.write_text(json.dumps([a for a in wanted if not a.startswith("--egress-socket=")]))
    procs.calls.clear()
    HostRunner()._virtual_node(t)
    assert json.loads(args_file.read_text()) == wanted
    assert procs.calls == [("stop", "virtual-node"), ("start", "virtual-node")]


def test_the_aggregator_proxies_with_a_front_proxy_identity_of_its_own_ca(tmp_path):
    from cryptography import x509
    from operators.serverlesscluster.tenant_pki import ensure_front_proxy_pki, ensure_tenant_pki
    ensure_tenant_pki(tmp_path, "t", "10.96.0.1")
    ensure_front_proxy_pki(tmp_path)
    client = x509.load_pem_x509_certificate((tmp_path / "front-proxy-client.crt").read_bytes())
    own = x509.load_pem_x509_certificate((tmp_path / "front-proxy-ca.crt").read_bytes())
    cluster_ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert client.subject.rfc4514_string() == "CN=front-proxy-client"
    client.verify_directly_issued_by(own)
    assert own.subject != cluster_ca.subject  # no cluster client certificate can assert X-Remote-User
    pem = (tmp_path / "front-proxy-client.crt").read_bytes()
    ensure_front_proxy_pki(tmp_path)
    assert (tmp_path / "front-proxy-client.crt").read_bytes() == pem

    args = cp.apiserver_args(Path("/bin"), T)
    assert {"--proxy-client-cert-file=/x/p1/pki/front-proxy-client.crt",
            "--proxy-client-key-file=/x/p1/pki/front-proxy-client.key",
            "--requestheader-client-ca-file=/x/p1/pki/front-proxy-ca.crt",
            "--requestheader-allowed-names=front-proxy-client"} <= set(args)
