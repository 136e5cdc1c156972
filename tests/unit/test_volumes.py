"""Pod volumes: the virtual node's file payloads, the content Secret, the local provider's
mount arguments and its kubelet-style atomic writer."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from operators.models.podspec import PodSpec
from operators.providers.errors import InvalidSpecError
from operators.providers.sandbox import SandboxRef
from operators.providers.local import volumes as local
from operators.virtualnode.mapping.volumes import (VolumeError, add_volumes, format_map, referenced_volume_sources,
                                           unsupported_volumes, volume_content)
from operators.volumecontent import build_content_secret, content_hash, read_content_secret

REF = SandboxRef("ns", "default.web", "uid-1")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def pod(volumes, containers=None, **meta):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1", **meta},
            "spec": {"containers": containers or [{"name": "c", "image": "i"}], "volumes": volumes}}


def files(content, vol):
    return {p: (base64.b64decode(f["data"]).decode(), oct(f["mode"])) for p, f in content[vol].items()}


CM = {"data": {"a.conf": "A", "b": "B"}, "binaryData": {"bin": b64("\x00\x01")}}
SECRET = {"data": {"user": b64("admin"), "pw": b64("s3cret")}}


def test_configmap_volume_all_keys_with_default_mode_and_binary_data():
    c = volume_content(pod([{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 0o600}}]),
                       secrets={}, configmaps={"cm": CM}, node_name="n")
    assert files(c, "cfg") == {"a.conf": ("A", "0o600"), "b": ("B", "0o600"), "bin": ("\x00\x01", "0o600")}


def test_items_choose_keys_paths_and_modes():
    v = {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a.conf", "path": "sub/dir/a"},
                                                               {"key": "b", "path": "b", "mode": 0o400}]}}
    c = volume_content(pod([v]), secrets={}, configmaps={"cm": CM}, node_name="n")
    assert files(c, "cfg") == {"sub/dir/a": ("A", "0o644"), "b": ("B", "0o400")}


def test_missing_sources_and_keys_fail_like_the_kubelet_unless_optional():
    with pytest.raises(VolumeError) as err:
        volume_content(pod([{"name": "cfg", "configMap": {"name": "nope"}}]), secrets={}, configmaps={"nope": None},
                       node_name="n")
    assert str(err.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "nope" not found'
    with pytest.raises(VolumeError) as err:
        volume_content(pod([{"name": "s", "secret": {"secretName": "creds"}}]), secrets={"creds": None},
                       configmaps={}, node_name="n")
    assert str(err.value) == 'MountVolume.SetUp failed for volume "s" : secret "creds" not found'
    with pytest.raises(VolumeError) as err:
        volume_content(pod([{"name": "s", "secret": {"secretName": "creds", "items": [{"key": "x", "path": "x"}]}}]),
                       secrets={"creds": SECRET}, configmaps={}, node_name="n")
    assert str(err.value).endswith(": references non-existent secret key: x")
    with pytest.raises(VolumeError) as err:
        volume_content(pod([{"name": "c", "configMap": {"name": "cm", "items": [{"key": "x", "path": "x"}]}}]),
                       secrets={}, configmaps={"cm": CM}, node_name="n")
    assert str(err.value).endswith(": configmap references non-existent config key: x")
    c = volume_content(pod([{"name": "c", "configMap": {"name": "nope", "optional": True}},
                            {"name": "s", "secret": {"secretName": "creds", "optional": True,
                                                     "items": [{"key": "x", "path": "x"}, {"key": "pw", "path": "p"}]}}]),
                       secrets={"creds": SECRET}, configmaps={"nope": None}, node_name="n")
    assert c["c"] == {} and files(c, "s") == {"p": ("s3cret", "0o644")}


def test_downward_api_files_as_the_kubelet_formats_them():
    p = pod([{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
    ]}}], containers=[{"name": "c", "image": "i", "resources": {"limits": {"memory": "64Mi"}}}],
        labels={"tier": "web", "app": 'x"y'}, annotations={"note": "hi"})
    c = volume_content(p, secrets={}, configmaps={}, node_name="n")
    assert files(c, "info") == {"labels": ('app="x\\"y"\ntier="web"', "0o644"), "annotations": ('note="hi"', "0o644"),
                                "name": ("web", "0o644"), "ns": ("default", "0o644"), "tier": ("web", "0o644"),
                                "mem": ("64", "0o644")}
    assert format_map({}) == ""
    with pytest.raises(VolumeError, match="unsupported fieldPath: status.podIP"):
        volume_content(pod([{"name": "i", "downwardAPI": {"items": [
            {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}]), secrets={}, configmaps={}, node_name="n")


def test_downward_api_resource_files_with_the_api_default_divisor():
    """Divisor "0" (what the apiserver stores when unset) is 1, as for the kubelet; negative is refused."""
    items = [{"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "0"}},
             {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "requests.memory",
                                                  "divisor": "0"}},
             {"path": "unset", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory"}}]
    containers = [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                                                            "requests": {"memory": "32Mi"}}}]
    c = volume_content(pod([{"name": "info", "downwardAPI": {"items": items}}], containers=containers),
                       secrets={}, configmaps={}, node_name="n")
    assert files(c, "info") == {"cpu": ("1", "0o644"), "mem": (str(32 * 2**20), "0o644"),
                                "unset": (str(64 * 2**20), "0o644")}
    items[0]["resourceFieldRef"]["divisor"] = "-1m"
    with pytest.raises(VolumeError, match="invalid divisor"):
        volume_content(pod([{"name": "info", "downwardAPI": {"items": items}}], containers=containers),
                       secrets={}, configmaps={}, node_name="n")


def test_sandbox_gets_supported_volumes_and_the_mounts_of_them():
    sa = {"name": "kube-api-access-x", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}}
    p = pod([sa, {"name": "data", "emptyDir": {}},
             {"name": "cfg", "configMap": {"name": "cm"}}, {"name": "host", "hostPath": {"path": "/"}}],
            containers=[{"name": "c", "image": "i", "volumeMounts": [
                {"name": "data", "mountPath": "/data", "subPath": "x", "readOnly": True},
                {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                {"name": "cfg", "mountPath": "/etc/cfg"}]}])
    sb = add_volumes({"containers": [{"name": "c", "image": "i"}]}, p)
    # The token's file comes with the volume content (satokens.py), not in the spec.
    assert sb["volumes"] == [{"name": "kube-api-access-x", "projected": {"sources": [
                                 {"configMap": {"name": "kube-root-ca.crt"}}]}},
                             {"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cm"}}]
    assert sb["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True, "subPath": "x"},
        {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "cfg", "mountPath": "/etc/cfg"}]
    assert unsupported_volumes(p) == ["host"]
    assert referenced_volume_sources(p) == (set(), {"cm", "kube-root-ca.crt"})
    PodSpec.model_validate(sb)


def test_projected_volumes_merge_their_sources():
    v = {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "b", "path": "conf/b"}]}},
        {"secret": {"name": "creds", "items": [{"key": "pw", "path": "pw", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}
    p = pod([v])
    c = volume_content(p, secrets={"creds": SECRET}, configmaps={"cm": CM}, node_name="n")
    assert files(c, "all") == {"conf/b": ("B", "0o440"), "pw": ("s3cret", "0o400"), "name": ("web", "0o440")}
    assert referenced_volume_sources(p) == ({"creds"}, {"cm"})
    assert add_volumes({"containers": [{"name": "c", "image": "i"}]}, p)["volumes"] == [v]
    PodSpec.model_validate({"containers": [{"name": "c", "image": "i"}], "volumes": [v]})


def test_content_secret_round_trip_and_owner():
    content = {"cfg": {"a": {"mode": 0o640, "data": b64("A")}}}
    owner = {"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": "default.web", "uid": "u"}}
    s = build_content_secret("default.web", "tenant", content, labels={"sk8s.io/cluster": "c"}, owner=owner)
    assert s["metadata"]["labels"] == {"sk8s.io/cluster": "c", "sk8s.io/volume-content": "true"}
    assert s["metadata"]["ownerReferences"][0]["uid"] == "u"
    assert s["metadata"]["annotations"]["sk8s.io/volume-content-hash"] == content_hash(content)
    assert read_content_secret(s) == {"cfg": {"a": (b"A", 0o640)}}


# --- local provider ------------------------------------------------------------------

def spec(volumes, mounts, **res):
    return PodSpec.model_validate({"containers": [{"name": "c", "image": "i", "volumeMounts": mounts, **res}],
                                   "volumes": volumes})


def test_mount_args_share_one_host_directory_per_volume():
    s = spec([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cm"}},
              {"name": "share", "nfs": {"server": "10.0.0.5", "path": "/exports", "readOnly": True}}],
             [{"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/logs", "subPath": "logs",
                                                       "readOnly": True},
              {"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "share", "mountPath": "/mnt"}])
    # A subPath's source is the bind mount prepared for it (test_subpath.py), never the joined path.
    assert local.mount_args(REF, s, s.containers[0], Path("/v"), {1: "/v/uid-1/.volume-subpaths/data/c/1"}) == [
        "--volume=/v/uid-1/data:/data:rw", "--volume=/v/uid-1/.volume-subpaths/data/c/1:/logs:ro",
        "--volume=/v/uid-1/cfg:/etc/cfg:ro",  # API data is always read-only, as upstream
        "--volume=sk8s-uid-1-share:/mnt:ro"]
    assert local.nfs_create_args(REF, s.volumes[2], {"sk8s.io/uid": "uid-1"}, "10.0.0.5") == [
        "volume", "create", "--driver=local", "--opt=type=nfs", "--opt=o=addr=10.0.0.5,nosuid,nodev,ro",
        "--opt=device=10.0.0.5:/exports", "--label=sk8s.io/uid=uid-1", "sk8s-uid-1-share"]
    bad = spec([{"name": "data", "emptyDir": {}}], [{"name": "other", "mountPath": "/x"}])
    with pytest.raises(InvalidSpecError, match='volumeMount "other" refers to no volume'):
        local.mount_args(REF, bad, bad.containers[0], Path("/v"))


def test_memory_emptydir_is_sized_by_its_limit_or_the_pods_memory():
    s = spec([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}], [])
    assert local.tmpfs_options(s, s.volumes[0]) == f"mode=1777,size={16 << 20}"
    s = spec([{"name": "m", "emptyDir": {"medium": "Memory"}}], [], resources={"limits": {"memory": "64Mi"}})
    assert local.tmpfs_options(s, s.volumes[0]) == f"mode=1777,size={64 << 20}"
    s = spec([{"name": "m", "emptyDir": {"medium": "Memory"}}], [])
    assert local.tmpfs_options(s, s.volumes[0]) == "mode=1777"


def test_disk_emptydir_with_a_size_limit_is_a_bounded_filesystem():
    cmds = local.disk_limit_commands(Path("/v/.d.img"), Path("/v/d"), 8 << 20)
    assert cmds[0] == ["truncate", f"--size={8 << 20}", "/v/.d.img"]
    assert cmds[1][0] == "mkfs.ext4" and cmds[2] == ["mount", "-o", "loop", "/v/.d.img", "/v/d"]
    assert local.disk_limit_commands(Path("i"), Path("d"), 1)[0][1] == f"--size={local.MIN_DISK_IMAGE}"


def test_concurrent_writers_of_one_volume_always_leave_its_files_readable(tmp_path):
    """The create handler and a content update write a pod's volume at the same moment (two
    threads): each used to remove the other's new directory, leaving `..data` dangling."""
    import threading
    target = tmp_path / "podinfo"
    errors = []

    lock = local._WRITE_LOCKS[hash(str(target)) % len(local._WRITE_LOCKS)]

    def writer(n: int) -> None:
        for i in range(60):
            local.write_files(target, {"memory_limit": (f"{n}-{i}".encode(), 0o644), "podname": (b"p", 0o644)})
            # Between writes (under the writers' lock), never dangling. Without the lock a
            # reader may resolve `..data` to the directory a swap is removing, as with the
            # kubelet's AtomicWriter: a transient miss, not the bug this test is about.
            with lock:
                if not (target / "memory_limit").exists():
                    errors.append((n, i))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and (target / "memory_limit").read_text().count("-") == 1
    assert len([p for p in target.iterdir() if p.name.startswith("..") and p.is_dir() and not p.is_symlink()]) == 1


def test_atomic_writer_swaps_the_data_symlink(tmp_path):
    target = tmp_path / "cfg"
    assert local.write_files(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert first.startswith("..") and os.readlink(target / "a") == "..data/a"
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    assert not local.write_files(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})  # unchanged: no swap
    assert local.write_files(target, {"a": (b"new", 0o644)})
    assert os.readlink(target / "..data") != first and (target / "a").read_text() == "new"
    assert not (target / "dir").exists() and not (target / first).exists()  # old files and links go
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == ["a"]


def test_the_compatibility_policy_is_applied_at_its_api_paths():
    import yaml

    from operators.serverlesscluster.cluster import COMPATIBILITY_POLICY, bootstrap_path
    docs = list(yaml.safe_load_all(COMPATIBILITY_POLICY.read_text()))
    policy, binding, images, images_binding, ignored, ignored_binding = docs
    # Ignored fields are admitted with a warning, never refused by this policy.
    assert bootstrap_path(ignored).endswith("/validatingadmissionpolicies/sk8s-ignored-fields")
    assert ignored_binding["spec"] == {"policyName": "sk8s-ignored-fields", "validationActions": ["Warn"]}
    assert "seLinuxOptions" not in yaml.safe_dump(policy)
    assert bootstrap_path(policy) == \
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/sk8s-compatibility"
    assert bootstrap_path(binding).endswith("/validatingadmissionpolicybindings/sk8s-compatibility")
    assert bootstrap_path(images).endswith("/validatingadmissionpolicies/sk8s-image-references")
    assert bootstrap_path(images_binding).endswith("/validatingadmissionpolicybindings/sk8s-image-references")
    # Image changes are carried out now: a plane bootstrapped by an earlier version loses the refusal.
    from operators.serverlesscluster.cluster import RETIRED
    assert [bootstrap_path(d) for d in RETIRED] == [
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/sk8s-pod-updates",
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/sk8s-pod-updates"]
    assert binding["spec"] == {"policyName": "sk8s-compatibility", "validationActions": ["Deny"]}
    assert bootstrap_path({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": {"name": "r", "namespace": "kube-node-lease"}}) == \
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-node-lease/roles/r"
    # Every validation names what it refuses.
    for p in (policy, images):
        assert all(v.get("message") or v.get("messageExpression") for v in p["spec"]["validations"])


def test_a_source_change_requeues_exactly_the_pods_that_read_it():
    from operators.kubeclient.informer import Informer
    from operators.virtualnode.controllers.volumesync import VolumeSync
    from operators.virtualnode.informers import ns_name
    queued = []
    vs = VolumeSync(tenant=None, meta=None, configmaps=Informer(None, "/api/v1/configmaps", name="cm", key=ns_name),
                    secrets=Informer(None, "/api/v1/secrets", name="s", key=ns_name), meta_namespace="t",
                    node_name="n", allocatable={}, requeue=queued.append)
    vs.track("default.a", pod([{"name": "c", "configMap": {"name": "cm"}}, {"name": "s", "secret": {"secretName": "s"}}]))
    vs.track("default.b", pod([{"name": "c", "configMap": {"name": "cm"}}]))
    cm = {"metadata": {"namespace": "default", "name": "cm"}}
    vs.configmaps.handlers[0]("MODIFIED", cm, None)
    assert sorted(queued) == ["default.a", "default.b"]
    queued.clear()
    vs.secrets.handlers[0]("MODIFIED", {"metadata": {"namespace": "default", "name": "s"}}, None)
    vs.secrets.handlers[0]("MODIFIED", {"metadata": {"namespace": "other", "name": "s"}}, None)
    assert queued == ["default.a"]
    queued.clear()
    vs.written["default.b"] = ("hash", None)
    vs.track("default.b", None)  # the pod is gone before its SandboxPod was made
    vs.configmaps.handlers[0]("MODIFIED", cm, None)
    assert queued == ["default.a"] and vs.unowned == {"default.b"}


def test_a_pod_may_have_more_than_a_hundred_volumes_up_to_the_bound():
    """Upstream conformance mounts 150 ClusterTrustBundles as 150 volumes of one container."""
    from operators.models.volumes import MAX_VOLUMES

    def spec(n):
        vols = [{"name": f"ctb-{i}", "projected": {"sources": [{"clusterTrustBundle": {"name": f"b{i}", "path": "a.pem"}}]}}
                for i in range(n)]
        mounts = [{"name": f"ctb-{i}", "mountPath": f"/var/run/ctb-{i}"} for i in range(n)]
        return {"containers": [{"name": "c", "image": "i", "volumeMounts": mounts}], "volumes": vols}

    assert len(PodSpec.model_validate(spec(150)).volumes) == 150
    with pytest.raises(ValueError, match="volumes"):
        PodSpec.model_validate(spec(MAX_VOLUMES + 1))
