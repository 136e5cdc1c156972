"""The virtual node's pure logic: pod -> SandboxPod, names, env resolution, status back, quota."""
import base64
import re

import pytest
import yaml

from operators.models.sandboxpod import SandboxPodSpec
from operators.virtualnode.controllers.binder import selector_mismatch, wants_binding
from operators.virtualnode.mapping.envresolve import ConfigError, expand, referenced_sources, resolve_env
from operators.virtualnode.controllers.node import node_labels, node_status
from operators.virtualnode.options import parse
from operators.virtualnode.mapping.quota import Capacity, Resources, check_fit, pod_requests
from operators.virtualnode.mapping.podstatus import lost_status, pod_status_from_sandbox, qos_class, status_patch
from operators.virtualnode.mapping.spec import build_sandboxpod, hostname_of, label_value, sandboxpod_name
from operators.kubeclient.workqueue import WorkQueue

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def pod(name="web", ns="default", containers=None, **spec):
    return {
        "metadata": {"name": name, "namespace": ns, "uid": "uid-1", "resourceVersion": "5",
                     "labels": {"app": "web"}, "annotations": {"team": "a"}},
        "spec": {"nodeName": "virtual-node", "serviceAccountName": "default",
                 "containers": containers or [{"name": "c", "image": "nginx:1.27"}], **spec},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def secret(**data):
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


# --- names -------------------------------------------------------------------------

def test_sandboxpod_name_is_namespace_dot_name():
    assert sandboxpod_name("default", "web-7d9f") == "default.web-7d9f"


def test_long_names_are_cut_and_hashed_deterministically():
    long = "a" * 120 + "." + "b" * 130
    name = sandboxpod_name("default", long)
    assert len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)
    assert name == sandboxpod_name("default", long)
    assert name != sandboxpod_name("default", long + "c")  # same prefix, different pod


def test_label_values_fit_63_characters():
    assert label_value("web") == "web"
    long = "x" * 100 + ".y"
    v = label_value(long)
    assert len(v) <= 63 and LABEL_VALUE.match(v) and v != label_value(long + "z")


def test_hostname_is_a_dns_label():
    assert hostname_of(pod(name="web")) == "web"
    assert hostname_of(pod(name="a.b")) == "a-b"
    assert hostname_of(pod(name="x" * 70)) == "x" * 63
    assert hostname_of(pod(hostname="custom")) == "custom"


# --- pod -> SandboxPod ---------------------------------------------------------------

def test_build_sandboxpod_copies_what_the_schema_has_and_validates():
    p = pod(containers=[{
        "name": "c", "image": "nginx:1.27", "command": ["sh", "-c"], "args": ["echo $(GREETING)", "$$(X)"],
        "workingDir": "/w", "imagePullPolicy": "IfNotPresent", "tty": True, "stdin": False,
        "ports": [{"containerPort": 80, "name": "http", "hostPort": 8080}],
        "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
        "volumeMounts": [{"name": "v", "mountPath": "/v"}], "livenessProbe": {"exec": {"command": ["true"]}},
    }], restartPolicy="OnFailure", terminationGracePeriodSeconds=7200, activeDeadlineSeconds=60,
        volumes=[{"name": "v", "emptyDir": {}}])
    body = build_sandboxpod(p, namespace="tenant-ns", cluster="demo", cluster_uid="cuid",
                            env={"c": [{"name": "GREETING", "value": "hi"}]})
    meta, spec = body["metadata"], body["spec"]
    assert meta["name"] == "default.web" and meta["namespace"] == "tenant-ns"
    assert meta["labels"] == {"sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": "cuid",
                              "sk8s.io/pod-namespace": "default", "sk8s.io/pod-name": "web",
                              "sk8s.io/pod-uid": "uid-1"}
    assert meta["annotations"]["sk8s.io/pod-name"] == "web"
    c = spec["containers"][0]
    assert c["args"] == ["echo hi", "$(X)"]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    assert c["env"] == [{"name": "GREETING", "value": "hi"}]
    assert c["volumeMounts"] == [{"name": "v", "mountPath": "/v"}] and spec["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert spec["terminationGracePeriodSeconds"] == 3600  # the schema's bound
    assert spec["restartPolicy"] == "OnFailure" and spec["clusterRef"] == {"name": "demo"}
    assert spec["hostname"] == "web" and spec["activeDeadlineSeconds"] == 60
    assert set(spec) <= set(SandboxPodSpec.model_fields)
    SandboxPodSpec.model_validate(spec)


def test_build_sandboxpod_defaults():
    spec = build_sandboxpod(pod(), namespace="n", cluster="c", cluster_uid="u", env={})["spec"]
    assert spec["restartPolicy"] == "Always" and spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"] == [{"name": "c", "image": "nginx:1.27"}]


# --- env ---------------------------------------------------------------------------------

def _resolve(container, secrets=None, configmaps=None, p=None):
    p = p or pod(containers=[container])
    return resolve_env(p, container, secrets=secrets or {}, configmaps=configmaps or {},
                       node_name="virtual-node", allocatable={"cpu": "4", "memory": "8Gi"})


def test_env_sources_become_literal_values_in_kubelet_order():
    c = {"name": "c", "image": "i",
         "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "s"}}],
         "env": [
             {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "s", "key": "user"}}},
             {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
             {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
             {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
             {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
             {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
             {"name": "GREETING", "value": "hi $(USER) from $(POD) $(UNKNOWN) $$(ESC)"},
             {"name": "CFG_color", "value": "overridden"},
         ]}
    env, skipped = _resolve(c, secrets={"s": secret(user="alice", token="t0k")},
                            configmaps={"cfg": {"data": {"color": "blue", "bad=key": "x", "1st": "y"}}})
    values = {e["name"]: e.get("value") for e in env}
    assert values["USER"] == "alice" and values["token"] == "t0k" and values["COLOR"] == "blue"
    assert values["POD"] == "web" and values["NS"] == "default" and values["APP"] == "web"
    assert values["NODE"] == "virtual-node" and values["SA"] == "default"
    assert values["GREETING"] == "hi alice from web $(UNKNOWN) $(ESC)"
    assert values["CFG_color"] == "overridden"
    assert values["CFG_1st"] == "y"  # any printable name but "=", as v1.37 (relaxed validation)
    assert skipped == ["Keys [CFG_bad=key] from the EnvFrom configMap default/cfg were skipped since they are "
                       "considered invalid environment variable names."]  # the kubelet's event message
    # Only known once the sandbox exists: stays a fieldRef for the provider.
    assert {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in env
    assert len([e for e in env if e["name"] == "CFG_color"]) == 1


@pytest.mark.parametrize("env,secrets,configmaps,message", [
    ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}], {}, {}, 'secret "x" not found'),
    ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}], {"x": secret(other="1")}, {},
     "couldn't find key k in Secret default/x"),
    ([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}], {}, {},
     'configmap "m" not found'),
    ([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}], {}, {"m": {"data": {}}},
     "couldn't find key k in ConfigMap default/m"),
])
def test_missing_required_values_fail_with_the_kubelets_message(env, secrets, configmaps, message):
    with pytest.raises(ConfigError) as err:
        _resolve({"name": "c", "image": "i", "env": env}, secrets, configmaps)
    assert str(err.value) == message


def test_optional_references_may_be_missing():
    env, _ = _resolve({"name": "c", "image": "i",
                       "envFrom": [{"secretRef": {"name": "gone", "optional": True}}],
                       "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k",
                                                                            "optional": True}}},
                               {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k",
                                                                               "optional": True}}}]},
                      {"x": secret(other="1")}, {})
    assert env == []


def test_resource_field_refs():
    c = {"name": "c", "image": "i", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
         "env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                 {"name": "CPU1", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}}]}
    values = {e["name"]: e["value"] for e in _resolve(c)[0]}
    assert values == {"CPU": "250", "CPU1": "1", "MEM": "64", "REQ": str(64 * 2**20)}
    no_limits = {"name": "c", "image": "i",
                 "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                            "divisor": "1Gi"}}}]}
    assert _resolve(no_limits)[0] == [{"name": "MEM", "value": "8"}]  # node allocatable


def test_resource_field_ref_zero_divisor_means_one_as_the_kubelet():
    """The apiserver stores an unset divisor as "0": the kubelet reads it as 1; negative stays an error."""
    c = {"name": "c", "image": "i", "resources": {"limits": {"cpu": "1250m", "memory": "64Mi"},
                                                  "requests": {"cpu": "1m", "memory": "1.5"}},
         "env": [{"name": "LCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}},
                 {"name": "RCPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": 0}}},
                 {"name": "LMEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "0"}}},
                 {"name": "RMEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
                 {"name": "MCPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                     "divisor": "1m"}}}]}
    values = {e["name"]: e["value"] for e in _resolve(c)[0]}
    # cpu rounded up to whole cores, memory in bytes (Quantity.Value rounds 1.5 up to 2)
    assert values == {"LCPU": "2", "RCPU": "1", "LMEM": str(64 * 2**20), "RMEM": "2", "MCPU": "1"}
    negative = {"name": "c", "image": "i", "env": [
        {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "-1"}}}]}
    with pytest.raises(ConfigError, match="invalid divisor '-1'"):
        _resolve(negative)


def test_referenced_sources():
    p = pod(containers=[{"name": "c", "image": "i", "envFrom": [{"configMapRef": {"name": "a"}}],
                         "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}])
    assert referenced_sources(p) == ({"s"}, {"a"})


@pytest.mark.parametrize("text,out", [
    ("$(A)", "1"), ("$(A)$(B)", "12"), ("$$(A)", "$(A)"), ("$(C)", "$(C)"), ("$(A", "$(A"),
    ("a$", "a$"), ("$x", "$x"), ("$$", "$"), ("", ""),
])
def test_expansion_like_kubernetes(text, out):
    assert expand(text, {"A": "1", "B": "2"}.get) == out


# --- status back -------------------------------------------------------------------------

def sbp_status(**kw):
    st = {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "10.0.0.1", "startTime": T0,
          "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": T0},
                         {"type": "ContainersReady", "status": "True", "lastTransitionTime": T0}],
          "containerStatuses": [{"name": "c", "image": "docker.io/library/nginx:1.27", "imageID": "sha256:abc",
                                 "containerID": "podman://123", "ready": True, "started": True,
                                 "restartCount": 1, "state": {"running": {"startedAt": T0}},
                                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
    st.update(kw)
    return {"metadata": {"name": "default.web", "uid": "s1", "labels": {"sk8s.io/pod-uid": "uid-1"}}, "status": st}


def cond(status, type_):
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_running_sandbox_makes_a_running_ready_pod():
    st = pod_status_from_sandbox(pod(), sbp_status(), now=T1)
    assert st["phase"] == "Running" and st["podIP"] == "10.0.0.5" and st["podIPs"] == [{"ip": "10.0.0.5"}]
    assert st["hostIP"] == "10.0.0.1" and st["hostIPs"] == [{"ip": "10.0.0.1"}] and st["startTime"] == T0
    assert cond(st, "Ready")["status"] == "True" and cond(st, "ContainersReady")["status"] == "True"
    assert cond(st, "PodScheduled")["status"] == "True" and cond(st, "Initialized")["status"] == "True"
    cs = st["containerStatuses"][0]
    assert cs["image"] == "nginx:1.27"  # as the spec says, like the kubelet
    assert cs["imageID"] == "sha256:abc" and cs["containerID"] == "podman://123" and cs["started"] is True
    assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 1
    assert st["qosClass"] == "BestEffort"


def test_no_sandbox_yet_is_container_creating():
    st = pod_status_from_sandbox(pod(), None, now=T1)
    assert st["phase"] == "Pending" and st["startTime"] == T1
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cond(st, "Ready")["status"] == "False" and cond(st, "Ready")["reason"] == "ContainersNotReady"


def test_config_error_is_shown_on_the_container():
    st = pod_status_from_sandbox(pod(), None, config_error='secret "x" not found', now=T1)
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"] == {"reason": "CreateContainerConfigError",
                                                              "message": 'secret "x" not found'}


def test_image_pull_failure_and_completion():
    waiting = sbp_status(phase="Pending", podIP=None, containerStatuses=[
        {"name": "c", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "ErrImagePull", "message": "boom"}}}])
    st = pod_status_from_sandbox(pod(), waiting, now=T1)
    assert st["phase"] == "Pending" and st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    assert st["podIP"] is None and st["podIPs"] is None
    done = sbp_status(phase="Succeeded", containerStatuses=[
        {"name": "c", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}])
    st = pod_status_from_sandbox(pod(), done, now=T1)
    assert st["phase"] == "Succeeded" and cond(st, "Ready")["reason"] == "PodCompleted"


def test_terminal_phase_is_kept():
    p = pod()
    p["status"] = {"phase": "Failed", "reason": "SandboxLost", "message": "gone"}
    st = pod_status_from_sandbox(p, sbp_status(), now=T1)
    assert st["phase"] == "Failed" and st["reason"] == "SandboxLost"


def test_transition_times_move_only_on_change_and_nothing_to_write_when_equal():
    first = pod_status_from_sandbox(pod(), sbp_status(), now=T0)
    p = pod()
    p["status"] = first
    again = pod_status_from_sandbox(p, sbp_status(), now=T1)
    assert cond(again, "Ready")["lastTransitionTime"] == cond(first, "Ready")["lastTransitionTime"]
    assert status_patch(p, again) is None
    changed = pod_status_from_sandbox(p, sbp_status(phase="Running", containerStatuses=[
        {"name": "c", "ready": False, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
        now=T1)
    patch = status_patch(p, changed)
    assert cond(patch, "Ready")["status"] == "False" and cond(patch, "Ready")["lastTransitionTime"] == T1
    assert patch["containerStatuses"][0]["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}


def test_foreign_conditions_survive_and_readiness_gates_hold_ready():
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    p["status"]["conditions"] = [{"type": "example.com/lb", "status": "False"}]
    st = pod_status_from_sandbox(p, sbp_status(), now=T1)
    assert cond(st, "example.com/lb")["status"] == "False"
    assert cond(st, "ContainersReady")["status"] == "True" and cond(st, "Ready")["status"] == "False"
    p["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    assert cond(pod_status_from_sandbox(p, sbp_status(), now=T1), "Ready")["status"] == "True"


def test_lost_sandbox_fails_the_pod():
    p = pod()
    p["status"] = pod_status_from_sandbox(p, sbp_status(), now=T0)
    st = lost_status(p, "sandbox gone", now=T1)
    assert st["phase"] == "Failed" and st["reason"] == "SandboxLost"
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "SandboxLost" and term["startedAt"] == T0
    assert cond(st, "Ready")["status"] == "False"


def test_status_and_node_conditions_carry_the_generation_they_reflect():
    """As the 1.37 kubelet: status.observedGeneration and each of its conditions' follow
    metadata.generation (bumped by a spec update such as activeDeadlineSeconds)."""
    p = pod()
    p["metadata"]["generation"] = 1
    p["status"] = pod_status_from_sandbox(p, sbp_status(), now=T0)
    assert p["status"]["observedGeneration"] == 1
    p["metadata"]["generation"] = 2
    p["status"]["conditions"].append({"type": "example.com/gate", "status": "True"})
    st = pod_status_from_sandbox(p, sbp_status(), now=T1)
    assert st["observedGeneration"] == 2 and status_patch(p, st)["observedGeneration"] == 2
    for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        assert cond(st, t)["observedGeneration"] == 2, t
        assert cond(st, t)["lastTransitionTime"] == T0  # a new generation is no transition
    assert "observedGeneration" not in cond(st, "example.com/gate")  # not the node's to say
    lost = lost_status(p, "gone", now=T1)
    assert lost["observedGeneration"] == 2
    for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        assert cond(lost, t)["observedGeneration"] == 2, t  # also those a failed pod keeps


@pytest.mark.parametrize("resources,qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}, "Guaranteed"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
])
def test_qos_class(resources, qos):
    assert qos_class(pod(containers=[{"name": "c", "image": "i", "resources": resources}])) == qos


# --- quota and binding -------------------------------------------------------------------

def test_pod_requests_sum_containers_and_fall_back_to_limits():
    p = pod(containers=[{"name": "a", "image": "i", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                        {"name": "b", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                        {"name": "c", "image": "i"}],
            initContainers=[{"name": "init", "image": "i", "resources": {"requests": {"cpu": "2"}}}])
    assert pod_requests(p) == Resources(2000, 64 * 2**20 + 2**30)


def test_check_fit_names_the_quota():
    cap = Capacity(pods=3, cpu_millis=2000, memory=2**30)
    assert check_fit(cap, Resources(1000, 0), 1, Resources(1000, 2**29)) is None
    msg = check_fit(cap, Resources(1500, 0), 1, Resources(1000, 0))
    assert msg.startswith("0/1 nodes are available: 1 Insufficient cpu") and "cluster quota cpu=2" in msg
    msg = check_fit(cap, Resources(0, 2**30), 3, Resources(0, 1))
    assert "Too many pods (cluster quota maxPods=3)" in msg and "Insufficient memory" in msg
    assert check_fit(Capacity(3, 1, 1, cpu_limited=False, memory_limited=False), Resources(9, 9), 0,
                     Resources(9, 9)) is None


def test_which_pods_the_binder_takes():
    unbound = pod()
    unbound["spec"].pop("nodeName")
    assert wants_binding(unbound)
    assert not wants_binding(pod())
    other = pod(schedulerName="my-scheduler")
    other["spec"].pop("nodeName")
    assert not wants_binding(other)
    gated = pod(schedulingGates=[{"name": "g"}])
    gated["spec"].pop("nodeName")
    assert not wants_binding(gated)
    labels = node_labels("virtual-node")
    assert selector_mismatch(pod(nodeSelector={"kubernetes.io/os": "linux"}), labels) is None
    assert "didn't match" in selector_mismatch(pod(nodeSelector={"disk": "ssd"}), labels)


# --- node, options, work queue -------------------------------------------------------------

def _opts(tmp_path, *extra):
    for f in ("t", "m", "c", "k", "ca"):
        (tmp_path / f).write_text("x")
    return parse(["--tenant-kubeconfig", str(tmp_path / "t"), "--meta-kubeconfig", str(tmp_path / "m"),
                  "--meta-namespace", "tenant-a", "--cluster", "a", "--cluster-uid", "u", "--port", "10250",
                  "--tls-cert", str(tmp_path / "c"), "--tls-key", str(tmp_path / "k"),
                  "--client-ca", str(tmp_path / "ca"), *extra])


def test_node_status(tmp_path):
    opts = _opts(tmp_path, "--max-pods", "10", "--cpu", "4", "--memory", "8Gi")
    st = node_status(opts, kubelet_version="v1.37.2", ready=True, now=T0)
    assert st["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "10", "ephemeral-storage": "100Gi"}
    assert st["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
    ready = cond(st, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    later = node_status(opts, kubelet_version="v1.37.2", ready=True, prev_conditions=st["conditions"], now=T1)
    assert cond(later, "Ready")["lastTransitionTime"] == T0 and cond(later, "Ready")["lastHeartbeatTime"] == T1
    down = node_status(opts, kubelet_version="v1.37.2", ready=False, not_ready_message="meta-cluster unreachable",
                       prev_conditions=st["conditions"], now=T1)
    assert cond(down, "Ready")["status"] == "False" and cond(down, "Ready")["lastTransitionTime"] == T1


def test_options_reject_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _opts(tmp_path, "--cpu", "lots")
    assert e.value.code == 2 and "--cpu: invalid quantity" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--tenant-kubeconfig", "/nonexistent"])
    opts = _opts(tmp_path)
    assert opts.node_name == "virtual-node" and opts.provider == "local" and not opts.cpu_limited


def test_rbac_manifest_grants_the_node_what_it_uses():
    from pathlib import Path
    import operators.virtualnode as vn
    docs = [d for d in yaml.safe_load_all((Path(vn.__file__).parent / "rbac.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rules = {r for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]
             for r in rule["resources"]}
    assert {"nodes", "nodes/status", "pods", "pods/status", "pods/binding", "events", "secrets", "configmaps",
            "leases"} <= rules
    assert all(s["name"] == "sk8s:virtual-node" for d in docs if "subjects" in d for s in d["subjects"])


async def test_work_queue_never_runs_a_key_twice_at_once():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    assert len(q) == 1
    key = await q.get()
    q.add("a")  # arrives while "a" is being processed
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1


def test_status_as_the_api_returns_it_needs_no_write():
    """Regression: fields the API always shows (lastState {}, lastProbeTime null) are no change."""
    sbp = {"metadata": {"name": "default.web", "uid": "s1", "labels": {"sk8s.io/pod-uid": "uid-1"}}, "status": {
        "phase": "Running", "podIP": "10.89.3.2", "hostIP": "10.89.3.1", "startTime": "2026-11-26T23:08:12Z",
        "conditions": [
            {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-11-26T23:08:12Z"},
            {"type": "ContainersReady", "status": "True", "reason": "ContainersReady", "message": "",
             "lastTransitionTime": "2026-11-26T23:08:12Z"},
            {"type": "Ready", "status": "True", "reason": "ContainersReady", "message": "",
             "lastTransitionTime": "2026-11-26T23:08:12Z"}],
        "containerStatuses": [{"name": "c", "image": "nginx:1.27", "imageID": "896f8b", "containerID": "podman://1bc9",
                               "ready": True, "started": True, "restartCount": 0,
                               "state": {"running": {"startedAt": "2026-11-26T23:08:12Z"}}}]}}
    p = pod()
    p["status"] = {
        "phase": "Running", "qosClass": "BestEffort", "podIP": "10.89.3.2", "podIPs": [{"ip": "10.89.3.2"}],
        "hostIP": "10.89.3.1", "hostIPs": [{"ip": "10.89.3.1"}], "startTime": "2026-11-26T23:08:11Z",
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": ts} for t, ts in (
                ("PodReadyToStartContainers", "2026-11-26T23:08:12Z"), ("Initialized", "2026-11-26T23:08:11Z"),
                ("Ready", "2026-11-26T23:08:12Z"), ("ContainersReady", "2026-11-26T23:08:12Z"),
                ("PodScheduled", "2026-11-26T23:08:11Z"))],
        "containerStatuses": [{"name": "c", "image": "nginx:1.27", "imageID": "896f8b", "containerID": "podman://1bc9",
                               "lastState": {}, "ready": True, "restartCount": 0, "started": True,
                               "state": {"running": {"startedAt": "2026-11-26T23:08:12Z"}}}]}
    assert status_patch(p, pod_status_from_sandbox(p, sbp, now=T1)) is None


def test_fields_a_sandbox_cannot_carry_are_named():
    from operators.virtualnode.mapping.spec import dropped_fields
    sa = {"name": "kube-api-access-x1y2z", "projected": {"sources": []}}
    sa_mount = {"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert dropped_fields(pod(containers=[{"name": "c", "image": "i", "volumeMounts": [sa_mount]}],
                              volumes=[sa])) == []
    p = pod(containers=[{"name": "c", "image": "i", "readinessProbe": {"httpGet": {"port": 80}},
                         "livenessProbe": {"grpc": {"port": 9000}},
                         "volumeMounts": [sa_mount, {"name": "data", "mountPath": "/data"}]}],
            volumes=[sa, {"name": "data", "hostPath": {"path": "/"}}], initContainers=[{"name": "i", "image": "i"}])
    assert dropped_fields(p) == ["volumes [data]", "container c: volumeMounts"]  # a grpc probe runs


def test_selinux_options_are_ignored_as_on_a_host_without_selinux_and_named():
    from operators.models.sandboxpod import SandboxPod
    from operators.virtualnode.mapping.spec import dropped_fields
    pod = {"metadata": {"name": "p", "namespace": "d", "uid": "u"},
           "spec": {"securityContext": {"seLinuxOptions": {"level": "s0:c0,c1"}, "runAsUser": 1000},
                    "containers": [{"name": "a", "image": "i",
                                    "securityContext": {"seLinuxOptions": {"level": "s0"}, "runAsUser": 5}}]}}
    sb = build_sandboxpod(pod, namespace="m", cluster="c", cluster_uid="cu", env={})
    assert sb["spec"]["securityContext"] == {"runAsUser": 1000}
    assert sb["spec"]["containers"][0]["securityContext"] == {"runAsUser": 5}
    SandboxPod.model_validate({"spec": sb["spec"]})  # whose schema still refuses them
    assert dropped_fields(pod) == ["container a: securityContext.seLinuxOptions", "securityContext.seLinuxOptions"]
