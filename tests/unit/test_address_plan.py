"""The tenant's address plan: a plane's VPC range held once, its apiserver's ClusterIP range
and certificate, the VPC built with it, and Services served at their ClusterIPs (pure or on
a temp dir)."""
import asyncio
import dataclasses
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from operators.embedded import components
from operators.models.contracts import SERVICE_CIDR
from operators.providers.errors import ProviderError
from operators.providers.local.vpc import LocalVpcs, VpcLayout
from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import planes
from operators.serverlesscluster.netplan import NetworkPlan, kube_dns_service
from operators.serverlesscluster.tenant_pki import ensure_tenant_pki
from operators.servicelb.status import api_server_address, lb_spec
from operators.virtualnode.mapping.services import build_servicelbs, ignored_ports, records

PLAN = NetworkPlan("10.112.4.0/23")
T = cp.Tenant(directory=Path("/x/p1"), ports=cp.TenantPorts(21000, 21001), etcd_url="https://127.0.0.1:2379",
              etcd_prefix="/sk8s/tenants/p1", name="c1", namespace="team", uid="u-1",
              sandbox_namespace="tenant-c1-u-1", network=PLAN)
LEGACY = dataclasses.replace(T, network=None)


def test_the_plan_splits_the_vpc_as_the_local_provider_builds_it():
    assert PLAN.status() == {"vpcCIDR": "10.112.4.0/23", "podCIDR": "10.112.4.0/24", "serviceCIDR": "10.112.5.0/24"}
    layout = VpcLayout(ipaddress.ip_network(PLAN.vpc_cidr))
    assert str(layout.pod_range) == PLAN.pod_cidr and str(layout.service_range) == PLAN.service_cidr
    # The apiserver gives `kubernetes` the first address; the LB must be able to take it,
    # and the resolver must be in the range (kube-dns's ClusterIP) but never an LB's.
    assert PLAN.kubernetes_ip == "10.112.5.1" and PLAN.kubernetes_ip in layout.service_addresses()
    assert ipaddress.ip_address(layout.resolver) in ipaddress.ip_network(PLAN.service_cidr)
    assert layout.resolver not in layout.service_addresses()
    dns = kube_dns_service(layout.resolver)
    assert dns["spec"]["clusterIP"] == "10.112.5.254" and "selector" not in dns["spec"]
    assert {(p["protocol"], p["port"]) for p in dns["spec"]["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_a_planned_apiserver_allocates_from_the_vpc_and_keeps_the_kubernetes_endpoints():
    args = cp.apiserver_args(Path("/bin"), T)
    assert "--service-cluster-ip-range=10.112.5.0/24" in args
    assert "--advertise-address=10.112.5.1" in args and "--endpoint-reconciler-type=lease" in args
    assert "--bind-address=127.0.0.1" in args  # still reachable from the host only
    assert "--service-cidr=10.112.5.0/24" in cp.virtual_node_args(T, Path("/m"))


def test_a_plane_made_before_plans_and_the_meta_cluster_keep_the_old_range():
    args = cp.apiserver_args(Path("/bin"), LEGACY)
    assert f"--service-cluster-ip-range={SERVICE_CIDR}" in args
    assert "--advertise-address=127.0.0.1" in args and "--endpoint-reconciler-type=none" in args
    assert not any(a.startswith("--service-cidr") for a in cp.virtual_node_args(LEGACY, Path("/m")))
    assert LEGACY.kubernetes_ip == "10.96.0.1"
    etcd = components.EtcdClient("https://e", Path("/ca"), Path("/c"), Path("/k"))
    meta = components.apiserver_argv(Path("/bin"), Path("/pki"), etcd=etcd, etcd_prefix="/m", port=1)
    assert f"--service-cluster-ip-range={SERVICE_CIDR}" in meta and "--endpoint-reconciler-type=none" in meta


def test_the_serving_certificate_names_the_kubernetes_cluster_ip(tmp_path):
    ensure_tenant_pki(tmp_path, "t", PLAN.kubernetes_ip)
    cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.112.5.1"}
    assert "kubernetes.default.svc.cluster.local" in san.get_values_for_type(x509.DNSName)


def test_a_plane_records_its_range_and_an_old_plane_has_none(tmp_path, monkeypatch):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    plane = planes.new_plane(vpc_cidr="10.112.4.0/23")
    assert planes.load(plane.directory).vpc_cidr == "10.112.4.0/23"
    old = planes.new_plane()
    assert planes.load(old.directory).vpc_cidr is None


class FakePodman:
    def __init__(self, subnets):
        self.subnets = subnets
        self.created = []

    async def json(self, *args):
        return [{"name": f"n{i}", "subnets": [{"subnet": s}]} for i, s in enumerate(self.subnets)]

    async def run(self, *args, check=True):
        from types import SimpleNamespace
        if args[:2] == ("network", "inspect"):
            return SimpleNamespace(rc=1, out="", err="no such network")
        if args[:2] == ("network", "create"):
            self.created.append(args)
            subnet = next(a for a in args if a.startswith("--subnet=")).split("=", 1)[1]
            if subnet in self.subnets:
                return SimpleNamespace(rc=125, out="", err=f"subnet {subnet} is already used on the host")
        return SimpleNamespace(rc=0, out="", err="")


def test_held_ranges_are_never_handed_out_twice_and_avoid_existing_networks(tmp_path):
    podman = FakePodman(["10.112.0.0/24"])
    vpcs = LocalVpcs(podman, "h", pool="10.112.0.0/21", holds=tmp_path)
    other = LocalVpcs(podman, "h", pool="10.112.0.0/21", holds=tmp_path)  # another process
    a = asyncio.run(vpcs.reserve("plane a"))
    b = asyncio.run(other.reserve("plane b"))
    assert str(a) == "10.112.2.0/23" and str(b) == "10.112.4.0/23"
    vpcs.release_hold(str(a))
    assert str(asyncio.run(other.reserve("plane c"))) == "10.112.2.0/23"
    asyncio.run(vpcs.reserve("plane d"))
    with pytest.raises(ProviderError) as err:
        asyncio.run(vpcs.reserve("plane e"))
    assert err.value.reason == "VpcPoolExhausted"


def test_a_hold_lives_as_long_as_its_owners_directory(tmp_path):
    import os
    from operators.providers.local.vpc import HOLD_GRACE, SubnetHolds
    holds = SubnetHolds(tmp_path / "holds")
    plane = tmp_path / "plane"
    plane.mkdir()
    a, b = ipaddress.ip_network("10.112.0.0/23"), ipaddress.ip_network("10.112.2.0/23")
    assert holds.try_hold(a, str(plane)) and holds.try_hold(b, "vpc x") and not holds.try_hold(a, "other")
    old = os.stat(tmp_path / "holds" / "10.112.0.0-23").st_mtime - HOLD_GRACE - 1
    for f in (tmp_path / "holds").iterdir():
        os.utime(f, (old, old))
    assert holds.held() == [a]  # a name's hold has expired (its network exists by then)
    plane.rmdir()  # the plane (or its whole installation) is gone: its range is free again
    assert holds.held() == [] and holds.try_hold(a, "new owner")


def test_a_vpc_is_built_with_its_planned_range_and_never_with_another(tmp_path):
    podman = FakePodman(["10.112.6.0/23"])
    vpcs = LocalVpcs(podman, "h", pool="10.112.0.0/20", holds=tmp_path)
    with pytest.raises(ProviderError) as err:
        asyncio.run(vpcs._ensure_network("uid-1", "10.112.6.0/23"))  # taken: refused, not replaced
    assert err.value.reason == "SubnetInUse"
    assert [a for a in podman.created[0] if a.startswith("--subnet")] == ["--subnet=10.112.6.0/23"]
    assert "--ip-range=10.112.6.0/24" in podman.created[0]


def test_a_lazily_made_vpc_takes_its_claimed_planes_range(tmp_path):
    """An operator resuming before the cluster's own (after `sk8s down` and `up`) makes the
    VPC with the range its control plane holds, not one of its own (which the cluster's
    operator would then refuse as VpcMismatch forever)."""
    podman = FakePodman([])
    vpcs = LocalVpcs(podman, "h", pool="10.112.0.0/20", holds=tmp_path / "holds")
    plane = tmp_path / "plane-1"
    plane.mkdir()
    held = asyncio.run(vpcs.reserve(str(plane)))
    asyncio.run(vpcs.reserve(str(tmp_path / "plane-2")))  # another plane's hold, not claimed
    (plane / "claimed-by").write_text("uid-9")
    assert vpcs.holds.claimed_by("uid-9") == held and vpcs.holds.claimed_by("uid-other") is None
    with pytest.raises(ProviderError):  # the fake never lists the network it made
        asyncio.run(vpcs._ensure_network("uid-9"))
    assert {a for a in podman.created[0] if a.startswith("--subnet")} == {f"--subnet={held}"}


def svc(name="web", ns="default", cluster_ip="10.112.5.20", **spec):
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": {"type": spec.pop("type", "ClusterIP"), "clusterIP": cluster_ip,
                     "ports": spec.pop("ports", [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]), **spec}}


def build(s, slices=(), cidr=PLAN.service_cidr):
    return build_servicelbs(s, list(slices), cluster="c", cluster_uid="u1", namespace="tenant-c", service_cidr=cidr)


API_SLICE = {"addressType": "IPv4", "ports": [{"name": "https", "port": 21000, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["10.112.5.1"], "conditions": {"ready": True}}]}


def test_an_intranet_load_balancer_answers_on_the_cluster_ip():
    [lb] = build(svc())
    assert lb["spec"]["loadBalancerIP"] == "10.112.5.20" and "apiServer" not in lb["spec"]
    # A LoadBalancer Service's internet LB keeps its own address.
    lbs = build(svc(type="LoadBalancer", loadBalancerIP="127.64.0.9"))
    assert [lb["spec"].get("loadBalancerIP") for lb in lbs] == ["10.112.5.20", "127.64.0.9"]
    # Without a plan (or a ClusterIP outside it), addresses are picked as before.
    assert "loadBalancerIP" not in build(svc(cluster_ip="10.96.0.20"))[0]["spec"]
    assert "loadBalancerIP" not in build(svc(), cidr=None)[0]["spec"]


def test_an_intranet_load_balancer_ip_other_than_the_cluster_ip_is_reported():
    s = svc(type="LoadBalancer", loadBalancerIP="10.112.5.99",
            annotations=None)
    s["metadata"]["annotations"] = {"service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type": "intranet"}
    [lb] = build(s)
    assert lb["spec"]["loadBalancerIP"] == "10.112.5.20"
    assert any(m.startswith("spec.loadBalancerIP: 10.112.5.99 is not used")
               for m in ignored_ports(s, PLAN.service_cidr))


def test_the_kubernetes_service_fronts_its_own_apiserver_and_kube_dns_gets_no_load_balancer():
    api = svc("kubernetes", cluster_ip="10.112.5.1", ports=[{"name": "https", "port": 443, "targetPort": 21000}])
    [lb] = build(api, [API_SLICE])
    assert lb["spec"]["apiServer"] is True and lb["spec"]["backends"] == []
    assert lb["spec"]["loadBalancerIP"] == "10.112.5.1" and lb["spec"]["addressType"] == "intranet"
    # 443, and the port the Endpoints advertise at the ClusterIP.
    assert [(x["port"], x["targetPort"]) for x in lb["spec"]["listeners"]] == [(443, 21000), (21000, 21000)]
    assert build(api, [API_SLICE], cidr=None) == []  # a cluster without a plan: as before
    dns = svc("kube-dns", "kube-system", cluster_ip="10.112.5.254",
              ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}])
    assert build(dns) == []


def test_dns_answers_the_cluster_ip():
    services = [svc(), svc("kubernetes", cluster_ip="10.112.5.1", ports=[{"port": 443, "targetPort": 21000}]),
                svc("kube-dns", "kube-system", cluster_ip="10.112.5.254")]
    lbs = {"default.web": {"status": {"phase": "Ready", "address": "10.112.5.7"}}}
    got = {r["rr"]: r["values"] for r in records(services, lambda ns, n: [], lbs, PLAN.service_cidr)
           if r["type"] == "A"}
    assert got == {"web.default.svc": ["10.112.5.20"], "kubernetes.default.svc": ["10.112.5.1"],
                   "kube-dns.kube-system.svc": ["10.112.5.254"]}
    legacy = {r["rr"]: r["values"] for r in records([svc(cluster_ip="10.96.0.5")], lambda ns, n: [], lbs)}
    assert legacy == {"web.default.svc": ["10.112.5.7"]}


def test_the_api_server_behind_a_load_balancer_is_the_clusters_own():
    cluster = {"metadata": {"uid": "u1"}, "status": {"endpoint": "https://127.0.0.1:21000"}}
    assert api_server_address(cluster) == ("127.0.0.1", 21000)
    for bad in (None, {"status": {}}, {"status": {"endpoint": "https://10.0.0.1:443"}},
                {"status": {"endpoint": "http://127.0.0.1:80"}}):
        with pytest.raises(ValueError, match="spec.apiServer"):
            api_server_address(bad)
    spec = lb_spec("x", {"addressType": "intranet", "vpcID": "u1", "apiServer": True,
                         "listeners": [{"port": 443, "targetPort": 22}], "backends": [{"ip": "10.112.4.9"}]},
                   ("127.0.0.1", 21000))
    assert spec.api_server == ("127.0.0.1", 21000) and spec.backends == []
