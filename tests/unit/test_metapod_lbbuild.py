"""The metapod load balancers' pure builders: ServiceLB (LBSpec) -> meta Service and
EndpointSlices, backends only where they are this installation's sandbox Pods, pool
addresses, health."""
from __future__ import annotations

import pytest

from operators.config import metapod_lb_settings
from operators.providers.metapod.lbbuild import (LABEL_LB_UID, MANAGED_BY, MAX_ENDPOINTS, REFUSED, build_service,
                                                 build_slices, build_state, ingress_address, pick_address,
                                                 pool_addresses, sandbox_ips, service_name)
from operators.providers.services import LBListener, LBSpec
from operators.servicelb.status import lb_spec

HOME = "h0me"
UID = "0b5f3a1e-1111-4222-8333-944455556666"


def pod(name: str, ip: str | None, *, ready: bool = True, home: str = HOME, provider: str = "metapod",
        deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "tenant-a-1", "uid": f"uid-{name}",
            "labels": {"sk8s.io/home": home, "sk8s.io/provider": provider}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "node-1"},
            "status": {**({"podIP": ip} if ip else {}),
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def spec_of(**kw) -> LBSpec:
    base = dict(id=UID, address_type="internet", vpc_id=None,
                listeners=[LBListener("TCP", 80, 8080), LBListener("UDP", 53, 5353)],
                backends=["10.244.1.5", "10.244.2.7"], namespace="tenant-a-1", name="default.web.internet")
    return LBSpec(**{**base, **kw})


def test_lb_spec_carries_the_servicelb_namespace_and_name():
    spec = lb_spec(UID, {"listeners": [{"port": 80, "targetPort": 8080}]}, namespace="ns", name="a.b.internet")
    assert (spec.namespace, spec.name) == ("ns", "a.b.internet")


def test_the_service_is_a_selectorless_load_balancer_owned_by_the_servicelb():
    svc = build_service(spec_of(), HOME, None)
    assert svc["metadata"]["name"] == service_name(UID) == f"lb-{UID}"
    assert svc["metadata"]["namespace"] == "tenant-a-1"
    assert svc["metadata"]["labels"][LABEL_LB_UID] == UID
    assert svc["metadata"]["ownerReferences"] == [{"apiVersion": "sk8s.io/v1alpha1", "kind": "ServiceLB",
                                                   "name": "default.web.internet", "uid": UID, "controller": True,
                                                   "blockOwnerDeletion": False}]
    s = svc["spec"]
    assert s["type"] == "LoadBalancer" and "selector" not in s and "externalIPs" not in s
    assert s["ports"] == [{"name": "tcp-80", "protocol": "TCP", "port": 80, "targetPort": 8080},
                          {"name": "udp-53", "protocol": "UDP", "port": 53, "targetPort": 5353}]
    assert "loadBalancerClass" not in s and "sessionAffinity" not in s


def test_a_class_takes_the_service_from_the_cloud_controller_and_opens_no_node_port():
    s = build_service(spec_of(load_balancer_ip="10.248.0.9", affinity_seconds=30), HOME, "sk8s.io/metapod-pool")["spec"]
    assert s["loadBalancerClass"] == "sk8s.io/metapod-pool" and s["allocateLoadBalancerNodePorts"] is False
    assert "loadBalancerIP" not in s  # the pool's own controller (this provider) takes it from the spec
    assert s["sessionAffinity"] == "ClientIP" and s["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 30
    cloud = build_service(spec_of(load_balancer_ip="47.1.2.3"), HOME, None)["spec"]
    assert cloud["loadBalancerIP"] == "47.1.2.3"


def test_only_sandbox_pods_of_this_installation_with_an_ip_are_backends():
    pods = [pod("a", "10.244.1.5"), pod("b", "10.244.2.7", home="other"), pod("c", "10.244.2.8", provider="local"),
            pod("d", None), pod("e", "10.244.2.9", deleting=True)]
    assert set(sandbox_ips(pods, HOME)) == {"10.244.1.5"}


def test_slices_name_the_sandbox_pods_and_refuse_any_other_ip():
    pods = sandbox_ips([pod("a", "10.244.1.5"), pod("b", "10.244.2.7", ready=False)], HOME)
    spec = spec_of(backends=["10.244.1.5", "10.244.2.7", "10.96.0.1", "10.249.0.5"])
    slices = build_slices(spec, pods, HOME)
    assert len(slices) == 1
    sl = slices[0]
    assert sl["metadata"]["name"] == f"lb-{UID}-0" and sl["addressType"] == "IPv4"
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == f"lb-{UID}"
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == MANAGED_BY
    assert sorted(sl["ports"], key=lambda p: p["name"]) == [{"name": "tcp-80", "protocol": "TCP", "port": 8080},
                                                            {"name": "udp-53", "protocol": "UDP", "port": 5353}]
    assert [e["addresses"] for e in sl["endpoints"]] == [["10.244.1.5"], ["10.244.2.7"]]
    assert sl["endpoints"][0]["targetRef"] == {"kind": "Pod", "namespace": "tenant-a-1", "name": "a", "uid": "uid-a"}
    assert [e["conditions"]["ready"] for e in sl["endpoints"]] == [True, False]
    assert sl["endpoints"][0]["nodeName"] == "node-1"


def test_backends_on_other_ports_get_a_slice_of_their_own_and_large_groups_are_split():
    ips = [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(MAX_ENDPOINTS + 1)]
    pods = sandbox_ips([pod(f"p{i}", ip) for i, ip in enumerate(ips + ["10.244.9.9"])], HOME)
    spec = spec_of(listeners=[LBListener("TCP", 80, 8080)], backends=ips + ["10.244.9.9"],
                   backend_ports={"10.244.9.9": [("TCP", 80, 9090)]})
    slices = build_slices(spec, pods, HOME)
    by_port = {}
    for sl in slices:
        by_port.setdefault(sl["ports"][0]["port"], []).append(len(sl["endpoints"]))
    assert by_port == {8080: [MAX_ENDPOINTS, 1], 9090: [1]}
    assert len({sl["metadata"]["name"] for sl in slices}) == 3


def test_health_is_the_sandbox_pods_readiness_and_names_refused_ips():
    pods = sandbox_ips([pod("a", "10.244.1.5"), pod("b", "10.244.2.7", ready=False)], HOME)
    state = build_state(spec_of(listeners=[LBListener("TCP", 80, 8080)],
                                backends=["10.244.1.5", "10.244.2.7", "10.249.0.5"]), "10.248.0.1", pods)
    assert state.address == "10.248.0.1"
    assert [(lst.port, n) for lst, n in state.listeners] == [(80, 1)]
    health = {b.ip: (b.healthy, b.message) for b in state.backends}
    assert health == {"10.244.1.5": (True, None), "10.244.2.7": (False, "its sandbox Pod is not Ready"),
                      "10.249.0.5": (False, REFUSED)}


def test_ingress_address_is_the_first_ip_or_hostname():
    assert ingress_address(None) is None
    assert ingress_address({"status": {"loadBalancer": {}}}) is None
    assert ingress_address({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}) == "lb.example"
    assert ingress_address({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}) == "1.2.3.4"


def test_pool_addresses_and_picking():
    pool = pool_addresses(["10.248.0.0/30", "10.248.0.9", "10.248.0.1"])
    assert pool == ["10.248.0.1", "10.248.0.2", "10.248.0.9"]
    spec = spec_of()
    assert pick_address(spec, None, pool, {}) == "10.248.0.1"
    assert pick_address(spec, None, pool, {"10.248.0.1": "other"}) == "10.248.0.2"
    assert pick_address(spec, "10.248.0.9", pool, {"10.248.0.1": "other", "10.248.0.9": UID}) == "10.248.0.9"
    assert pick_address(spec, "10.248.0.1", pool, {"10.248.0.1": "other"}) == "10.248.0.2"  # recorded, now another's
    assert pick_address(spec, None, pool, dict.fromkeys(pool, "other")) is None
    asked = spec_of(load_balancer_ip="10.248.0.2")
    assert pick_address(asked, "10.248.0.1", pool, {}) == "10.248.0.2"
    assert pick_address(asked, None, pool, {"10.248.0.2": "other"}) is None
    assert pick_address(spec_of(load_balancer_ip="192.0.2.1"), None, pool, {}) is None


@pytest.mark.parametrize("env,want", [
    ({}, {"addresses": (), "class": None}),
    ({"SK8S_METAPOD_LB_ADDRESSES": " 10.248.0.0/24, 10.248.1.1 "},
     {"addresses": ("10.248.0.0/24", "10.248.1.1"), "class": "sk8s.io/metapod-pool"}),
    ({"SK8S_METAPOD_LB_CLASS": "example.com/lb"}, {"addresses": (), "class": "example.com/lb"}),
])
def test_settings(monkeypatch, env, want):
    for key in ("SK8S_METAPOD_LB_ADDRESSES", "SK8S_METAPOD_LB_CLASS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert metapod_lb_settings("sk8s.io/metapod-pool") == want
