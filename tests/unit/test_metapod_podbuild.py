"""SandboxPod -> meta-cluster Pod (pure): every field mapped or refused by name, and the
hostile cases: nothing of a tenant's reaches the node (no host namespaces, no hostPath, no
hostPort, no service-account token, no meta Secret read by name)."""
import base64
import json

import pytest

from operators.models.podspec import PodSpec
from operators.models.sandboxpod import EphemeralContainer
from operators.providers.errors import InvalidSpecError
from operators.providers.metapod.ephemeral import build_ephemeral
from operators.providers.metapod.podbuild import (MetaPlacement, build_files_secret, build_pod, file_key,
                                                  files_secret_name)
from operators.providers.metapod.refusals import unsupported
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("sk8s-t-demo", "web-5d9c", "0b7e3c1a-5f7e-4c44-9a59-2f1e8c2b6d10")
LABELS = {"sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": "c-uid-1"}
PLACEMENT = MetaPlacement(home_id="home-1")


def pod(**extra) -> PodSpec:
    return PodSpec.model_validate({"containers": [{"name": "c", "image": "nginx:1.25"}], **extra})


def container(**fields) -> PodSpec:
    return PodSpec.model_validate({"containers": [{"name": "c", "image": "nginx:1.25", **fields}]})


def build(spec: PodSpec, content=None, placement=PLACEMENT, labels=LABELS) -> dict:
    return build_pod(REF, spec, labels, placement, content)


REPRESENTATIVE = {
    "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 20, "activeDeadlineSeconds": 600,
    "hostname": "web-0", "shareProcessNamespace": True,
    "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db.local"]}],
    "serviceEnv": [{"name": "API_SERVICE_HOST", "value": "10.96.0.20"}, {"name": "MODE", "value": "svc"}],
    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000, "supplementalGroups": [3000],
                        "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]},
    "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"]},
                       {"name": "side", "image": "envoy:1", "restartPolicy": "Always"}],
    "containers": [{
        "name": "web", "image": "registry.example.com/nginx:1.25", "command": ["nginx"], "args": ["-g", "x"],
        "workingDir": "/srv", "imagePullPolicy": "IfNotPresent", "tty": True, "stdin": True,
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "FallbackToLogsOnError",
        "env": [{"name": "MODE", "value": "prod"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                      "requests": {"cpu": "100m"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [
            {"name": "X-A", "value": "b"}]}, "periodSeconds": 5, "successThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 4, "terminationGracePeriodSeconds": 5},
        "startupProbe": {"grpc": {"port": 9000, "service": "health"}, "initialDelaySeconds": 1},
        "lifecycle": {"postStart": {"exec": {"command": ["touch", "/tmp/up"]}}, "preStop": {"sleep": {"seconds": 3}}},
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                         {"name": "conf", "mountPath": "/etc/nginx/conf.d", "readOnly": True, "subPath": "d"},
                         {"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "privileged": False,
                            "capabilities": {"add": ["NET_BIND_SERVICE", "SYS_PTRACE"], "drop": ["ALL"]}},
    }],
    "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "conf", "configMap": {"name": "nginx-conf"}},
                {"name": "logs", "emptyDir": {}},
                {"name": "token", "secret": {"secretName": "tenant-secret", "optional": True}}],
    "dnsPolicy": "ClusterFirst",
    "dnsConfig": {"searches": ["ns.svc.cluster.local"], "options": [{"name": "ndots", "value": "5"}]},
}
CONTENT = {"conf": {"d/default.conf": (b"server {}\n", 0o644), "mime.types": (b"types {}\n", 0o600)}}


def test_a_representative_pod_is_mapped_field_by_field():
    manifest = build(PodSpec.model_validate(REPRESENTATIVE), CONTENT)
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == REF.instance_name and manifest["metadata"]["namespace"] == REF.namespace
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"], spec["activeDeadlineSeconds"]) == \
        ("OnFailure", 20, 600)
    assert spec["hostname"] == "web-0" and spec["shareProcessNamespace"] is True
    assert spec["hostAliases"] == [{"ip": "10.0.0.9", "hostnames": ["db.local"]}]
    assert spec["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000,
                                       "supplementalGroups": [3000], "seccompProfile": {"type": "RuntimeDefault"},
                                       "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]}
    assert [c["name"] for c in spec["initContainers"]] == ["init", "side"]
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    web = spec["containers"][0]
    assert (web["command"], web["args"], web["workingDir"], web["imagePullPolicy"], web["tty"], web["stdin"]) == \
        (["nginx"], ["-g", "x"], "/srv", "IfNotPresent", True, True)
    assert web["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in web["env"]}
    # service variables first for the names the container leaves free; its own value wins
    assert [e["name"] for e in web["env"]][:1] == ["API_SERVICE_HOST"]
    assert env["MODE"] == {"name": "MODE", "value": "prod"}
    assert env["POD_NAME"]["value"] == REF.name and env["POD_NS"]["value"] == REF.namespace
    assert env["POD_UID"]["value"] == REF.uid
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}  # never the node's
    assert env["MEM"]["valueFrom"] == {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                            {"containerPort": 53, "protocol": "UDP"}]
    assert web["resources"] == {"limits": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                                "requests": {"cpu": "100m"}}
    assert web["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [
        {"name": "X-A", "value": "b"}]}, "periodSeconds": 5, "successThreshold": 2}
    assert web["livenessProbe"] == {"tcpSocket": {"port": 80}, "failureThreshold": 4,
                                    "terminationGracePeriodSeconds": 5}
    assert web["startupProbe"] == {"grpc": {"port": 9000, "service": "health"}, "initialDelaySeconds": 1}
    assert web["lifecycle"] == {"postStart": {"exec": {"command": ["touch", "/tmp/up"]}},
                                "preStop": {"sleep": {"seconds": 3}}}
    assert web["volumeMounts"][2] == {"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}
    assert web["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                      "runAsNonRoot": True, "privileged": False,
                                      "capabilities": {"add": ["NET_BIND_SERVICE", "SYS_PTRACE"], "drop": ["ALL"]}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache"] == {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    assert volumes["conf"]["secret"] == {"secretName": files_secret_name(REF), "items": [
        {"key": file_key("conf", "d/default.conf"), "path": "d/default.conf", "mode": 0o644},
        {"key": file_key("conf", "mime.types"), "path": "mime.types", "mode": 0o600}]}
    # an optional source that is absent: an empty read-only volume, never every file of the Secret
    assert volumes["token"] == {"name": "token", "downwardAPI": {"items": []}}
    assert spec["dnsPolicy"] == "Default"  # never the meta-cluster's DNS
    assert spec["dnsConfig"] == {"searches": ["ns.svc.cluster.local"], "options": [{"name": "ndots", "value": "5"}]}


def test_the_pod_is_locked_down_whatever_the_tenant_asks():
    spec = build(PodSpec.model_validate(REPRESENTATIVE), CONTENT)["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert (spec["hostNetwork"], spec["hostPID"], spec["hostIPC"]) == (False, False, False)
    text = json.dumps(spec)
    for forbidden in ("hostPath", "hostPort", "nodeName", "serviceAccountName", "priorityClassName",
                      "tolerations", "nfs", "configMap", "tenant-secret", "nginx-conf"):
        assert forbidden not in text, forbidden
    assert "runtimeClassName" not in spec


def test_metadata_owner_labels_and_spread():
    manifest = build(pod(), placement=MetaPlacement("home-1", runtime_class="gvisor"))
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["ownerReferences"] == [{"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "name": REF.name,
                                        "uid": REF.uid, "controller": True, "blockOwnerDeletion": False}]
    assert meta["labels"] == {"sk8s.io/home": "home-1", "sk8s.io/provider": "metapod", "sk8s.io/uid": REF.uid,
                              "sk8s.io/namespace": REF.namespace, "sk8s.io/name": REF.name,
                              "sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": "c-uid-1"}
    assert meta["annotations"] == {"sk8s.io/sandbox-name": REF.name}
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"sk8s.io/cluster-uid": "c-uid-1", "sk8s.io/provider": "metapod"}}}]
    assert spec["hostname"] == REF.name  # the kubelet's default: the pod's name, not the meta Pod's
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_a_name_too_long_for_a_label_stays_in_the_annotation_only():
    long_ref = SandboxRef("ns", "a" * 80, "u-1")
    meta = build_pod(long_ref, pod(), {}, PLACEMENT)["metadata"]
    assert "sk8s.io/name" not in meta["labels"] and meta["annotations"]["sk8s.io/sandbox-name"] == "a" * 80
    assert "topologySpreadConstraints" not in build_pod(long_ref, pod(), {}, PLACEMENT)["spec"]


@pytest.mark.parametrize("dns, servers, want", [
    ({}, (), {"dnsPolicy": "Default"}),
    ({}, ("10.96.0.10",), {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.96.0.10"]}}),
    ({"dnsPolicy": "Default"}, ("10.96.0.10",), {"dnsPolicy": "Default"}),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, ("10.96.0.10",),
     {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
])
def test_dns_is_never_the_meta_clusters(dns, servers, want):
    spec = build(pod(**dns), placement=MetaPlacement("h", name_servers=servers))["spec"]
    got = {k: spec[k] for k in ("dnsPolicy", "dnsConfig") if k in spec}
    assert got == want


REFUSED = [
    (pod(volumes=[{"name": "v", "nfs": {"server": "10.0.0.1", "path": "/"}}]), "spec.volumes[0].nfs"),
    (pod(hostDomain="sub.ns.svc.cluster.local"), "spec.hostDomain"),
    (pod(hostDomain="s.ns.svc.cluster.local", setHostnameAsFQDN=True), "spec.setHostnameAsFQDN"),
    (pod(hostname="a.b"), "spec.hostname"),
    (pod(dnsPolicy="None"), "spec.dnsConfig.nameservers"),
    (container(env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
     "spec.containers[0].env[0].valueFrom"),
    (container(env=[{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "s", "key": "k"}}}]),
     "spec.containers[0].env[0].valueFrom"),
    (container(env=[{"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]),
     "spec.containers[0].env[0].valueFrom.fieldRef"),
    (container(resources={"limits": {"nvidia.com/gpu": 1}}), "spec.containers[0].resources.limits.nvidia.com/gpu"),
    (container(livenessProbe={"httpGet": {"port": 80, "host": "127.0.0.1"}}),
     "spec.containers[0].livenessProbe.httpGet.host"),
    (container(readinessProbe={"tcpSocket": {"port": 80, "host": "localhost"}}),
     "spec.containers[0].readinessProbe.tcpSocket.host"),
    (container(startupProbe={"grpc": {"port": 80, "mode": "TLS"}}), "spec.containers[0].startupProbe.grpc.mode"),
    (container(lifecycle={"preStop": {"httpGet": {"port": 80, "host": "::1"}}}),
     "spec.containers[0].lifecycle.preStop.httpGet.host"),
]


@pytest.mark.parametrize("spec, path", REFUSED, ids=[p for _, p in REFUSED])
def test_what_a_meta_pod_cannot_honour_is_refused_by_name(spec, path):
    assert path in [p for p, _ in unsupported(spec)]
    with pytest.raises(InvalidSpecError) as info:
        build(spec)
    assert path in str(info.value) and info.value.retryable is False


@pytest.mark.parametrize("field, value", [
    ("privileged", True), ("procMount", "Unmasked"),
    ("seccompProfile", {"type": "Unconfined"}), ("appArmorProfile", {"type": "Unconfined"}),
    ("capabilities", {"add": ["SYS_ADMIN"]}), ("seLinuxOptions", {"level": "s0"}),
])
def test_what_would_weaken_the_sandbox_is_refused_never_dropped(field, value):
    from operators.models.securitycontext import SecurityContext
    sc = SecurityContext.model_validate({field: value})
    spec = container()
    spec = spec.model_copy(update={"containers": [spec.containers[0].model_copy(update={"securityContext": sc})]})
    with pytest.raises(InvalidSpecError) as info:
        build(spec)
    assert f"spec.containers[0].securityContext.{field}" in str(info.value)


def test_pod_level_weakening_and_user_namespaces_are_refused():
    from operators.models.securitycontext import PodSecurityContext
    psc = PodSecurityContext.model_validate({"sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                                             "seccompProfile": {"type": "Unconfined"}})
    spec = pod().model_copy(update={"securityContext": psc, "hostUsers": False})
    paths = [p for p, _ in unsupported(spec)]
    assert paths == ["spec.hostUsers", "spec.securityContext.seccompProfile", "spec.securityContext.sysctls[0]"]


def test_the_files_secret_holds_each_file_under_its_key_owned_by_the_sandboxpod():
    secret = build_files_secret(REF, CONTENT, LABELS, "home-1")
    assert secret["metadata"]["name"] == files_secret_name(REF) == f"{REF.instance_name}-files"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        file_key("conf", "d/default.conf"): b"server {}\n", file_key("conf", "mime.types"): b"types {}\n"}
    # keys are valid Secret keys whatever the path holds, and differ per volume
    assert file_key("a", "x/../y") != file_key("b", "x/../y")
    assert all(c.isalnum() or c in "-._" for c in file_key("a", "x/../../etc/passwd"))


def test_an_ephemeral_container_maps_with_its_target_and_refuses_what_it_cannot_have():
    c = EphemeralContainer.model_validate({"name": "debug", "image": "busybox:1.36", "command": ["sh"],
                                           "stdin": True, "tty": True, "targetContainerName": "web"})
    out = build_ephemeral(c, pod(), REF)
    assert out == {"name": "debug", "image": "busybox:1.36", "command": ["sh"], "tty": True, "stdin": True,
                   "targetContainerName": "web"}
    bad = EphemeralContainer.model_validate({"name": "d", "image": "busybox", "ports": [{"containerPort": 80}],
                                             "env": [{"name": "X", "valueFrom": {"secretKeyRef": {
                                                 "name": "s", "key": "k"}}}]})
    with pytest.raises(InvalidSpecError) as info:
        build_ephemeral(bad, pod(), REF)
    assert "ephemeralContainers[d].ports" in str(info.value) and "env[0].valueFrom" in str(info.value)
