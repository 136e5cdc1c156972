"""The in-cluster runner's objects of one tenant control plane (podplane.py)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import podplane as pp
from operators.serverlesscluster.netplan import NetworkPlan
from operators.virtualnode import claim

ETCD = "https://sk8s-datastore.sk8s-system.svc:2379"
NS = "sk8s-planes"


def tenant(**kw) -> cp.Tenant:
    base = dict(directory=Path("/host/planes/abc"), ports=cp.TenantPorts(23456, 23457), etcd_url="https://127.0.0.1:2379",
                etcd_prefix="/sk8s/tenants/abc", network=NetworkPlan("10.112.0.0/16"))
    return cp.Tenant(**{**base, **kw})


def containers(dep: dict) -> dict[str, dict]:
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def test_the_pod_runs_the_same_command_lines_as_the_host_rendered_for_the_pod():
    t = tenant()
    dep = pp.build_deployment(t, "abc", NS, ETCD)
    api = containers(dep)["kube-apiserver"]["command"]
    host = cp.apiserver_args(pp.BIN, pp.pod_tenant(t, ETCD))
    assert api == [("--bind-address=0.0.0.0" if a == "--bind-address=127.0.0.1" else a) for a in host]
    assert "--bind-address=0.0.0.0" in api and f"--secure-port={pp.APISERVER_PORT}" in api
    assert f"--etcd-servers={ETCD}" in api and "--etcd-prefix=/sk8s/tenants/abc" in api
    # Nothing of the operator's host leaks into the Pod's command lines.
    for c in containers(dep).values():
        assert not any("/host/planes" in a or "23456" in a for a in c["command"]), c["name"]


def test_a_standby_plane_has_no_scheduler_and_a_virtual_node_waiting_for_its_claim():
    dep = pp.build_deployment(tenant(), "abc", NS, ETCD)
    names = list(containers(dep))
    assert names == ["kube-apiserver", "kube-controller-manager", "virtual-node"]
    vnode = containers(dep)["virtual-node"]
    assert vnode["image"] == pp.PlaneImages().operator
    assert vnode["command"][-1] == "--claim-secret=sk8s-plane-abc-claim"
    assert containers(pp.build_deployment(tenant(virtual_nodes=3), "abc", NS, ETCD)).keys() >= {"kube-scheduler"}


def test_the_pod_is_non_root_read_only_and_moves_off_a_lost_node_quickly():
    dep = pp.build_deployment(tenant(), "abc", NS, ETCD)
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    for c in spec["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in spec["volumes"])
    evict = {t["key"]: t["tolerationSeconds"] for t in spec["tolerations"]}
    assert evict == {"node.kubernetes.io/not-ready": 15, "node.kubernetes.io/unreachable": 15}
    api = containers(dep)["kube-apiserver"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 6443, "scheme": "HTTPS"}


def test_every_file_a_command_line_names_is_mounted():
    """A path in an argument that no volume provides would fail only at start in a real cluster."""
    dep = pp.build_deployment(tenant(virtual_nodes=2), "abc", NS, ETCD)
    secret = pp.build_credentials_secret("abc", NS, {f: b"x" for f in (
        "ca.crt", "apiserver.crt", "apiserver.key", "sa.crt", "sa.key", "etcd-ca.crt", "etcd-client.crt",
        "etcd-client.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key", "front-proxy-client.crt",
        "front-proxy-client.key", "front-proxy-ca.crt", "virtual-node-serving.crt", "virtual-node-serving.key")},
        {u: {"kind": "Config"} for u in pp.KUBECONFIG_USERS})
    cm = pp.build_config_map("abc", NS)
    for c in containers(dep).values():
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        for arg in c["command"]:
            value = arg.split("=", 1)[-1]
            if not value.startswith(str(pp.PLANE_DIR)) or value.endswith((".log", ".args", ".sock")):
                continue
            path = Path(value)
            if str(path.parent) in mounts and mounts[str(path.parent)]["name"] == "credentials":
                assert path.name in secret["data"], (c["name"], arg)
            elif str(path) in mounts:
                m = mounts[str(path)]
                source = secret["data"] if m["name"] == "credentials" else cm["data"]
                assert m["subPath"] in source, (c["name"], arg)
            else:
                pytest.fail(f"{c['name']}: {arg} is in no volume")


def test_the_plane_service_account_reads_only_its_own_claim():
    sa, role, binding = pp.build_access("abc", NS)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["sk8s-plane-abc-claim"],
                              "verbs": ["get"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NS}]
    dep = pp.build_deployment(tenant(), "abc", NS, ETCD)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_objects_are_applied_deployment_last_and_all_carry_the_plane_label():
    objs = pp.build_plane_objects(tenant(), "abc", NS, ETCD, {"ca.crt": b"x"}, {})
    assert [o["kind"] for o in objs][-1] == "Deployment"
    assert all(o["metadata"]["labels"][pp.LABEL_PLANE] == "abc" and o["metadata"]["namespace"] == NS for o in objs)
    svc = next(o for o in objs if o["kind"] == "Service")
    assert svc["spec"]["selector"] == {pp.LABEL_PLANE: "abc"}
    assert svc["spec"]["ports"][0]["targetPort"] == pp.APISERVER_PORT
    assert pp.endpoint("abc", NS) == "https://sk8s-plane-abc.sk8s-planes.svc:443"
    assert pp.serving_names(pp.service_host("abc", NS)) == [
        "sk8s-plane-abc", "sk8s-plane-abc.sk8s-planes", "sk8s-plane-abc.sk8s-planes.svc",
        "sk8s-plane-abc.sk8s-planes.svc.cluster.local"]


def test_the_claim_carries_the_virtual_node_arguments_for_the_cluster(tmp_path):
    t = tenant(name="web", namespace="team-a", uid="u-1", sandbox_namespace="sk8s-web-u1")
    secret = pp.build_claim_secret(t, "abc", NS, ETCD, {"kind": "Config", "users": []})
    assert secret["metadata"]["name"] == "sk8s-plane-abc-claim"
    assert secret["metadata"]["labels"]["sk8s.io/claimed-by"] == "u-1"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    args = json.loads(data["args"])
    assert "--cluster=web" in args and "--meta-namespace=sk8s-web-u1" in args
    assert f"--meta-kubeconfig={pp.PLANE_DIR / 'meta.kubeconfig'}" in args
    assert f"--port={pp.KUBELET_PORT}" in args
    args_path = tmp_path / "virtual-node.args"
    claim.install_claim(data, args_path)
    assert json.loads(args_path.read_text()) == args
    assert yaml.safe_load((tmp_path / "meta.kubeconfig").read_text())["kind"] == "Config"
    assert (tmp_path / "meta.kubeconfig").stat().st_mode & 0o077 == 0


def test_a_claim_without_its_parts_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        claim.install_claim({"args": b"[]"}, tmp_path / "a")
    with pytest.raises(ValueError):
        claim.install_claim({"args": b"not json", "meta.kubeconfig": b""}, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_the_config_map_points_the_egress_selector_at_the_socket_in_the_pod():
    cm = pp.build_config_map("abc", NS)
    selector = yaml.safe_load(cm["data"]["egress-selector.yaml"])
    udss = {s["connection"]["transport"]["uds"]["udsName"] for s in selector["egressSelections"]}
    assert udss == {str(pp.PLANE_DIR / "egress.sock")}
    assert yaml.safe_load(cm["data"]["audit-policy.yaml"])["kind"] == "Policy"


def test_a_plane_is_written_back_from_its_secret_and_only_once(tmp_path):
    from operators.serverlesscluster import podrunner
    record = json.dumps({"id": "0123456789ab", "apiserver": 443, "kubelet": 10250,
                         "etcdPrefix": "/sk8s/tenants/0123456789ab"}).encode()
    data = {"plane.json": record, "ca.crt": b"CA", "sa.key": b"K", "controller-manager.kubeconfig": b"x"}
    assert podrunner.write_plane(tmp_path, data, "uid-1", b"kind: Config") is True
    d = tmp_path / "0123456789ab"
    assert (d / "meta.kubeconfig").read_bytes() == b"kind: Config"  # the claim's: the same token
    assert (d / "meta.kubeconfig").stat().st_mode & 0o077 == 0
    assert (d / "pki" / "ca.crt").read_bytes() == b"CA" and (d / "pki" / "sa.key").read_bytes() == b"K"
    assert not (d / "pki" / "controller-manager.kubeconfig").exists()  # the operator writes its own
    assert (d / "claimed-by").read_text() == "uid-1"
    assert (d / "pki").stat().st_mode & 0o077 == 0
    assert podrunner.write_plane(tmp_path, {**data, "ca.crt": b"OTHER"}, None) is False
    assert (d / "pki" / "ca.crt").read_bytes() == b"CA"


@pytest.mark.parametrize("pid", ["../etc", "ABCDEF012345", "0123456789ab/..", "", "0123456789abc"])
def test_a_plane_id_from_a_secret_must_be_a_plane_id(tmp_path, pid):
    from operators.serverlesscluster import podrunner
    record = json.dumps({"id": pid, "apiserver": 443, "kubelet": 10250, "etcdPrefix": "/x"}).encode()
    with pytest.raises(ValueError, match="not a plane id"):
        podrunner.write_plane(tmp_path, {"plane.json": record}, None)
    assert list(tmp_path.iterdir()) == []


def test_object_paths_and_the_kubelet_keeps_the_containers():
    from operators.serverlesscluster import podrunner
    objs = pp.build_plane_objects(tenant(), "abc", NS, ETCD, {}, {})
    paths = [podrunner.object_path(o, o["metadata"]["name"]) for o in objs]
    assert paths[-1] == "/apis/apps/v1/namespaces/sk8s-planes/deployments/sk8s-plane-abc"
    assert "/apis/rbac.authorization.k8s.io/v1/namespaces/sk8s-planes/roles/sk8s-plane-abc" in paths
    assert set(podrunner.DELETE_ORDER) == {o["kind"] for o in objs}
    managed = podrunner.KubeletManaged()
    assert managed.running("kube-apiserver") and managed.age("virtual-node") > 3600


def test_pod_kubeconfigs_point_at_the_pods_loopback(tmp_path):
    from operators.serverlesscluster import podrunner
    from operators.serverlesscluster.tenant_pki import ensure_tenant_pki
    t = tenant(directory=tmp_path)
    ensure_tenant_pki(t.pki, "tenant", t.kubernetes_ip, pp.serving_names(pp.service_host("abc", NS)))
    configs = podrunner.pod_kubeconfigs(t)
    assert set(configs) == {"controller-manager", "virtual-node"}  # no scheduler certificate yet
    for cfg in configs.values():
        assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    from cryptography import x509
    cert = x509.load_pem_x509_certificate((t.pki / "apiserver.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "sk8s-plane-abc.sk8s-planes.svc" in names and "kubernetes.default.svc" in names
