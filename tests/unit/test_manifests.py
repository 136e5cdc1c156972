"""The deploy kustomization (manifests/) renders and follows the house rules.

Renders with `kubectl kustomize`: the kubectl cached by hack/build-components.sh if
present (never triggers a build), else the one on PATH; skips if there is none.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CRD_DIR = ROOT / "crds"
CRD_NAMES = {"sandboxpods.sk8s.io", "serverlessclusters.sk8s.io", "servicelbs.sk8s.io"}
NAMESPACE = "sk8s-system"


def find_kubectl() -> str | None:
    """The kubectl that hack/build-components.sh caches (same cache layout), else PATH."""
    cache = Path(os.environ.get("SK8S_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sk8s")
    built = sorted((cache / "bin").glob("k8s-*/kubectl"), key=lambda p: p.stat().st_mtime)
    built = [p for p in built if os.access(p, os.X_OK)]
    if built:
        return str(built[-1])
    return shutil.which("kubectl")


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl: neither cached by hack/build-components.sh nor on PATH")
    proc = subprocess.run([kubectl, "kustomize", str(MANIFESTS)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize manifests failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_crd_kustomization_lists_every_generated_crd():
    listed = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "crds/kustomization.yaml is out of sync with crds/*.yaml"


def test_the_three_crds_are_included(rendered):
    names = {d["metadata"]["name"] for d in of_kind(rendered, "CustomResourceDefinition")}
    assert CRD_NAMES <= names


def test_namespace_is_included(rendered):
    assert NAMESPACE in {d["metadata"]["name"] for d in of_kind(rendered, "Namespace")}


def test_there_is_a_sandboxpod_operator(rendered):
    deployments = {d["metadata"]["name"] for d in of_kind(rendered, "Deployment")}
    assert "sandboxpod-operator" in deployments


def test_every_deployment_is_a_single_recreated_replica_with_liveness(rendered):
    deployments = of_kind(rendered, "Deployment")
    assert deployments
    for d in deployments:
        name, spec = d["metadata"]["name"], d["spec"]
        assert d["metadata"].get("namespace") == NAMESPACE, name
        assert spec.get("replicas") == 1, name
        assert spec.get("strategy", {}).get("type") == "Recreate", name
        pod = spec["template"]["spec"]
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, name
        for c in pod["containers"]:
            probe = c.get("livenessProbe")
            assert probe and probe["httpGet"]["path"] == "/healthz", f"{name}/{c['name']}"
            # The image `make images` builds here (hack/build-operator-image.sh tags it).
            assert c["image"] == "localhost/sk8s-operator:latest", f"{name}/{c['name']}"
            assert c.get("imagePullPolicy") == "IfNotPresent", f"{name}/{c['name']}"
            assert "--standalone" in c["command"], f"{name}/{c['name']}"
            res = c.get("resources", {})
            assert res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"), name


def test_every_operator_service_account_is_bound_to_a_cluster_role(rendered):
    roles = {d["metadata"]["name"] for d in of_kind(rendered, "ClusterRole")}
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"])
                for d in of_kind(rendered, "ServiceAccount")}
    bound: set[tuple[str, str]] = set()
    for b in of_kind(rendered, "ClusterRoleBinding"):
        assert b["roleRef"]["kind"] == "ClusterRole"
        assert b["roleRef"]["name"] in roles, f"{b['metadata']['name']} binds a missing role"
        bound |= {(s["namespace"], s["name"]) for s in b["subjects"] if s["kind"] == "ServiceAccount"}
    for d in of_kind(rendered, "Deployment"):
        sa = d["spec"]["template"]["spec"].get("serviceAccountName")
        assert (d["metadata"]["namespace"], sa) in accounts, f"{d['metadata']['name']}: no ServiceAccount {sa}"
    assert accounts and accounts <= bound, f"unbound: {accounts - bound}"


def test_no_cluster_role_grants_wildcards(rendered):
    roles = of_kind(rendered, "ClusterRole")
    assert roles
    for r in roles:
        for rule in r.get("rules", []):
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(field, []), f"{r['metadata']['name']}: '*' in {field}"


def test_datastore_files_are_the_builders_output():
    from operators.datastore import manifests as datastore
    for name, text in datastore.files().items():
        on_disk = (MANIFESTS / "datastore" / name).read_text()
        assert on_disk == text, f"manifests/datastore/{name} is stale: python -m operators.datastore.manifests"


def test_the_datastore_is_a_non_root_etcd_statefulset_with_storage_and_probes(rendered):
    sts = {d["metadata"]["name"]: d for d in of_kind(rendered, "StatefulSet")}["sk8s-datastore"]
    assert sts["metadata"]["namespace"] == NAMESPACE
    spec = sts["spec"]
    assert spec["serviceName"] == "sk8s-datastore-peers" and spec["podManagementPolicy"] == "Parallel"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["image"] == "localhost/sk8s-controlplane:latest" and c["command"] == ["/usr/local/bin/etcd"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    args = c["args"]
    for flag in ("--client-cert-auth=true", "--peer-client-cert-auth=true", "--enable-grpc-gateway=false",
                 "--data-dir=/var/lib/etcd/data"):
        assert flag in args, flag
    assert all(a.startswith("--listen-metrics-urls=http://") or "http://" not in a for a in args)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "metrics", probe
    assert {"name": "metrics", "containerPort": 2381} in c["ports"]
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == "/var/lib/etcd"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"]
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "sk8s-datastore-tls"


def test_the_datastore_services_reach_its_members(rendered):
    sts = {d["metadata"]["name"]: d for d in of_kind(rendered, "StatefulSet")}["sk8s-datastore"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    services = {d["metadata"]["name"]: d["spec"] for d in of_kind(rendered, "Service")}
    peers, client = services["sk8s-datastore-peers"], services["sk8s-datastore"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    assert {p["port"] for p in peers["ports"]} == {2379, 2380}
    assert [p["port"] for p in client["ports"]] == [2379]
    for spec in (peers, client):
        assert spec["selector"].items() <= pod_labels.items()
    (policy,) = [d for d in of_kind(rendered, "NetworkPolicy") if d["metadata"]["name"] == "sk8s-datastore"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == [2379, 2380]  # not the metrics port


def _covers(rules: list[dict], wanted: dict) -> bool:
    """Whether `rules` hold every verb on every resource of `wanted` (RBAC's escalation check)."""
    for group in wanted["apiGroups"]:
        for resource in wanted["resources"]:
            for verb in wanted["verbs"]:
                if not any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
                           and verb in r.get("verbs", []) and not r.get("resourceNames") for r in rules):
                    return False
    return True


def test_the_serverlesscluster_operator_holds_every_right_it_grants_a_virtual_node(rendered):
    """RBAC refuses a Role granting what its creator does not hold (found on kind: 403 at the
    first cluster, the manifests lagging behind the rules the operator grants)."""
    from operators.serverlesscluster.cluster import vnode_meta_rules
    held = [rule for r in of_kind(rendered, "ClusterRole") if r["metadata"]["name"].startswith(
        "sk8s-serverlesscluster-operator") for rule in r["rules"]]
    for provider in ("local", "aliyun", "metapod"):
        for rule in vnode_meta_rules(provider):
            assert _covers(held, rule), f"{provider}: the operator cannot grant {rule}"


def test_the_plane_role_it_grants_is_within_its_rights_in_the_plane_namespace(rendered):
    from operators.serverlesscluster import podplane
    held = [rule for r in of_kind(rendered, "Role") if r["metadata"]["namespace"] == "sk8s-planes"
            for rule in r["rules"]]
    held += [rule for r in of_kind(rendered, "ClusterRole")
             if r["metadata"]["name"] == "sk8s-serverlesscluster-operator" for rule in r["rules"]]
    _, role, _ = podplane.build_access("0123456789ab", "sk8s-planes")
    for rule in role["rules"]:
        assert _covers(held, {k: v for k, v in rule.items() if k != "resourceNames"}), rule


def test_every_operator_has_a_readiness_probe(rendered):
    for d in of_kind(rendered, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/healthz", d["metadata"]["name"]
