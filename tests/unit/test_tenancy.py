"""Tenancy of meta-cluster objects (issue 9, class 5): the namespace says whose an object is,
fields that say otherwise are refused by name; Service load balancer failures become Events."""
import asyncio

import pytest

from operators import tenancy
from operators.models.servicelb import ServiceLBSpec
from operators.providers.errors import ProviderError
from operators.providers.local.loadbalancer import choose_address
from operators.sandboxpod.sandbox import labels_of
from operators.servicelb.status import lb_spec
from operators.tenancy import Tenant, namespace_tenant, refusals, sandbox_namespace, unknown_vpcs
from operators.virtualnode.mapping.services import (MAX_LISTENERS, build_servicelbs, ignored_ports, lb_failure,
                                            lb_refusal)

A = Tenant("alpha", "aaaaaaaa-1111-2222-3333-444444444444")
B_UID = "bbbbbbbb-1111-2222-3333-444444444444"


def ns(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def obj(spec=None, **labels):
    return {"metadata": {"name": "x", "namespace": sandbox_namespace(A.cluster, A.uid), "labels": labels},
            "spec": spec or {}}


def test_a_tenant_namespace_is_known_by_its_labels_and_its_name():
    good = ns(sandbox_namespace("alpha", A.uid), **{"sk8s.io/cluster": "alpha", "sk8s.io/cluster-uid": A.uid})
    assert namespace_tenant(good) == A
    # The labels copied onto a namespace of another name do not make it the tenant's.
    assert namespace_tenant(ns("default", **{"sk8s.io/cluster": "alpha", "sk8s.io/cluster-uid": A.uid})) is None
    assert namespace_tenant(ns(sandbox_namespace("alpha", A.uid))) is None
    assert namespace_tenant(None) is None
    assert sandbox_namespace("alpha", A.uid) == "tenant-alpha-aaaaaaaa"


def test_the_virtual_nodes_own_objects_pass():
    sbp = obj({"clusterRef": {"name": "alpha"}}, **{"sk8s.io/cluster": "alpha", "sk8s.io/cluster-uid": A.uid})
    assert refusals("SandboxPod", sbp, A) == []
    assert refusals("ServiceLB", obj({"vpcID": A.uid, "clusterRef": {"name": "alpha"}}), A) == []
    assert refusals("PrivateZone", obj({"vpcIDs": [A.uid]}), A) == []
    assert refusals("SandboxPod", obj(), A) == []  # nothing said: the namespace's tenant


@pytest.mark.parametrize("kind,body,field", [
    ("SandboxPod", obj(**{"sk8s.io/cluster-uid": B_UID}), "metadata.labels[sk8s.io/cluster-uid]"),
    ("SandboxPod", obj(**{"sk8s.io/cluster": "beta"}), "metadata.labels[sk8s.io/cluster]"),
    ("SandboxPod", obj({"clusterRef": {"name": "beta"}}), "spec.clusterRef.name"),
    ("ServiceLB", obj({"vpcID": B_UID}), "spec.vpcID"),
    ("ServiceLB", obj({}), "spec.vpcID"),  # no VPC is no way around the VPC's confinement
    ("ServiceLB", obj({"vpcID": ""}), "spec.vpcID"),
    ("ServiceLB", obj({"vpcID": A.uid}, **{"sk8s.io/cluster-uid": B_UID}), "metadata.labels[sk8s.io/cluster-uid]"),
    ("PrivateZone", obj({"vpcIDs": [A.uid, B_UID]}), "spec.vpcIDs[1]"),
    ("PrivateZone", obj({"vpcIDs": ["no-such-vpc"]}), "spec.vpcIDs[0]"),
])
def test_fields_naming_another_tenant_are_refused_by_name(kind, body, field):
    problems = refusals(kind, body, A)
    assert len(problems) == 1 and problems[0].startswith(field + ":"), problems


def test_an_admins_objects_may_name_only_vpcs_of_existing_clusters():
    admin = {"metadata": {"namespace": "default", "labels": {"sk8s.io/cluster-uid": "ghost"}}, "spec": {}}
    assert unknown_vpcs("SandboxPod", admin, {A.uid}) == [
        "metadata.labels[sk8s.io/cluster-uid]: 'ghost' is the VPC of no ServerlessCluster"]
    assert unknown_vpcs("SandboxPod", {"metadata": {}, "spec": {}}, set()) == []  # the sandbox network
    assert unknown_vpcs("ServiceLB", {"spec": {"vpcID": A.uid}}, {A.uid}) == []
    assert [p.split(":")[0] for p in unknown_vpcs("PrivateZone", {"spec": {"vpcIDs": [A.uid, "x"]}}, {A.uid})] \
        == ["spec.vpcIDs[1]"]


def test_check_takes_the_tenant_from_the_namespace(monkeypatch):
    namespaces = {sandbox_namespace("alpha", A.uid): ns(sandbox_namespace("alpha", A.uid), **{
        "sk8s.io/cluster": "alpha", "sk8s.io/cluster-uid": A.uid}), "default": ns("default")}

    async def read_namespace(name):
        return namespaces.get(name)
    monkeypatch.setattr(tenancy, "_read_namespace", read_namespace)
    monkeypatch.setattr(tenancy, "_tenants", {})

    async def uids():
        return {A.uid, B_UID}
    monkeypatch.setattr(tenancy, "cluster_uids", uids)
    assert asyncio.run(tenancy.check("PrivateZone", obj({"vpcIDs": [A.uid]}))) == A
    with pytest.raises(tenancy.TenancyError, match=r"spec\.vpcIDs\[0\]"):
        asyncio.run(tenancy.check("PrivateZone", obj({"vpcIDs": [B_UID]})))
    admin = {"metadata": {"namespace": "default"}, "spec": {"vpcIDs": [B_UID]}}
    assert asyncio.run(tenancy.check("PrivateZone", admin)) is None  # an admin may bind any cluster's VPC
    with pytest.raises(tenancy.TenancyError, match="no ServerlessCluster"):
        asyncio.run(tenancy.check("PrivateZone", {"metadata": {"namespace": "default"}, "spec": {"vpcIDs": ["z"]}}))


def test_sandbox_network_labels_come_from_the_namespace_in_a_tenant_namespace():
    body = obj({"clusterRef": {"name": "alpha"}})
    assert labels_of(body, A) == {"sk8s.io/cluster": "alpha", "sk8s.io/cluster-uid": A.uid}
    admin = {"metadata": {"labels": {"sk8s.io/cluster-uid": B_UID}}, "spec": {"clusterRef": {"name": "beta"}}}
    assert labels_of(admin) == {"sk8s.io/cluster": "beta", "sk8s.io/cluster-uid": B_UID}
    assert labels_of({"metadata": {}, "spec": {}}) == {}


def test_load_balancer_ip_is_taken_if_free_and_in_range_else_refused_by_name():
    cands = ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
    assert choose_address(cands, {"10.0.1.1"}, asked="10.0.1.3", recorded=None, where="r") == "10.0.1.3"
    assert choose_address(cands, {"10.0.1.1"}, asked=None, recorded=None, where="r") == "10.0.1.2"
    with pytest.raises(ProviderError, match=r"^spec\.loadBalancerIP: 10\.0\.1\.1 is in use") as exc:
        choose_address(cands, {"10.0.1.1"}, asked="10.0.1.1", recorded=None, where="r")
    assert exc.value.reason == "AddressInUse"
    with pytest.raises(ProviderError, match=r"^spec\.loadBalancerIP: 192\.0\.2\.1 is not an address .*\(r\)"):
        choose_address(cands, set(), asked="192.0.2.1", recorded="10.0.1.2", where="r")


def svc(type_="LoadBalancer", ports=None, **spec):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u-web", "annotations": {}},
            "spec": {"type": type_, "clusterIP": "10.96.0.9",
                     "ports": ports if ports is not None else [{"port": 80, "targetPort": 80}], **spec}}


def test_load_balancer_ip_goes_to_the_external_lb_only():
    lbs = build_servicelbs(svc(loadBalancerIP="127.70.0.9"), [], cluster="c", cluster_uid="u", namespace="t")
    by_type = {lb["spec"]["addressType"]: lb["spec"] for lb in lbs}
    assert by_type["internet"]["loadBalancerIP"] == "127.70.0.9" and "loadBalancerIP" not in by_type["intranet"]
    assert lb_spec("uid", by_type["internet"]).load_balancer_ip == "127.70.0.9"
    ServiceLBSpec.model_validate(by_type["internet"])
    plain = build_servicelbs(svc("ClusterIP", loadBalancerIP="10.0.0.1"), [], cluster="c", cluster_uid="u",
                             namespace="t")
    assert "loadBalancerIP" not in plain[0]["spec"]  # only LoadBalancer Services have one


def test_too_many_ports_is_said_on_the_service_not_swallowed():
    ports = [{"name": f"p{i}", "port": 1000 + i, "targetPort": 1000 + i} for i in range(200)]
    message = lb_refusal(svc(ports=ports), [])
    assert message.startswith("spec.ports: 200 ports") and str(MAX_LISTENERS) in message
    assert lb_refusal(svc(ports=ports[:MAX_LISTENERS]), []) is None
    assert lb_refusal(svc("ExternalName", ports=ports), []) is None  # no load balancer wanted at all
    # The limit is the ServiceLB schema's own.
    assert ServiceLBSpec.model_json_schema()["properties"]["listeners"]["maxItems"] == MAX_LISTENERS


def test_sctp_ports_and_lb_failures_become_event_messages():
    ports = [{"port": 80, "targetPort": 80}, {"port": 9, "targetPort": 9, "protocol": "SCTP"}]
    assert ignored_ports(svc(ports=ports)) == [
        "spec.ports[1].protocol: SCTP is not served (sk8s load balancers serve TCP and UDP)"]
    assert lb_failure({"status": {"phase": "Failed", "message": "spec.loadBalancerIP: x"}}) == "spec.loadBalancerIP: x"
    assert lb_failure({"status": {"phase": "Ready", "message": None}}) is None


def test_the_admission_policy_covers_the_same_kinds_and_fields_and_is_installed():
    from pathlib import Path

    import yaml

    from operators.embedded.supervisor import TENANCY_POLICY
    root = Path(__file__).resolve().parents[2]
    assert TENANCY_POLICY == root / "manifests" / "tenancy" / "tenancy-policy.yaml"
    policy, binding = yaml.safe_load_all(TENANCY_POLICY.read_text())
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail" and binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    rule, = spec["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"sandboxpods", "servicelbs", "privatezones"}
    assert {e["key"] for e in spec["matchConstraints"]["namespaceSelector"]["matchExpressions"]} == {
        tenancy.LABEL_CLUSTER, tenancy.LABEL_CLUSTER_UID}
    fields = {v["message"].split(":")[0] for v in spec["validations"]}
    assert fields == {"metadata.labels[sk8s.io/cluster-uid]", "metadata.labels[sk8s.io/cluster]",
                      "spec.clusterRef.name", "spec.vpcID", "spec.vpcIDs"}
    assert all(v["messageExpression"].lstrip().startswith(('"' + f.split(":")[0], "has("))
               for v, f in zip(spec["validations"], [v["message"] for v in spec["validations"]]))
    assert "tenancy" in yaml.safe_load((root / "manifests" / "kustomization.yaml").read_text())["resources"]


def test_a_tenants_sandboxpod_runs_only_where_its_cluster_runs():
    tenant = Tenant("alpha", "uid-a")
    body = {"metadata": {"name": "p"}, "spec": {"provider": "aliyun"}}
    (why,) = refusals("SandboxPod", body, tenant)
    assert why.startswith("spec.provider: 'aliyun' is not this namespace's cluster's provider")
    assert refusals("SandboxPod", {"metadata": {}, "spec": {"provider": "local"}}, tenant) == []
    assert refusals("SandboxPod", {"metadata": {}, "spec": {}}, tenant) == []


def test_an_aliyun_tenants_objects_name_its_provider():
    """The namespace label names the cluster's provider; its SandboxPods, LBs and zones must
    name the same, so a compromised virtual node cannot spend another provider's account."""
    ns = {"metadata": {"name": sandbox_namespace("beta", "uid-b"),
                       "labels": {"sk8s.io/cluster": "beta", "sk8s.io/cluster-uid": "uid-b", "sk8s.io/provider": "aliyun"}}}
    tenant = namespace_tenant(ns)
    assert tenant == Tenant("beta", "uid-b", "aliyun")
    for kind in ("SandboxPod", "ServiceLB", "PrivateZone"):
        spec = {"vpcID": "uid-b", "vpcIDs": ["uid-b"]}
        assert refusals(kind, {"metadata": {}, "spec": {**spec, "provider": "aliyun"}}, tenant) == []
        (why,) = refusals(kind, {"metadata": {}, "spec": spec}, tenant)
        assert why == "spec.provider: 'local' is not this namespace's cluster's provider ('aliyun')"
