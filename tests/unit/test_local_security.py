"""securityContext -> `podman run` options (pure), and the kubelet's runAsNonRoot check."""
import re

import pytest

from operators.config import CONTAINERS_CONF
from operators.models.podspec import PodSpec
from operators.models.securitycontext import DEFAULT_CAPABILITIES, SecurityContext
from operators.providers.errors import InvalidSpecError
from operators.providers.sandbox import SandboxRef
from operators.providers.local.security import (needs_image_user, parse_image_user, security_args,
                                                verify_run_as_non_root)
from operators.providers.local.spec import run_args

POD = "web_ns1(1234)"


def spec(pod_sc=None, **container_sc) -> PodSpec:
    c = {"name": "app", "image": "localhost/img:1"}
    if container_sc:
        c["securityContext"] = container_sc
    body = {"containers": [c]}
    if pod_sc is not None:
        body["securityContext"] = pod_sc
    return PodSpec.model_validate(body)


def args(s: PodSpec, image_user: str | None = None) -> list[str]:
    return security_args(s, s.containers[0], image_user, POD)


def test_nothing_set_adds_nothing():
    # RuntimeDefault seccomp, default capabilities and masked /proc are the runtime's own defaults.
    assert args(spec()) == []


@pytest.mark.parametrize("pod_sc,container_sc,expected", [
    ({"runAsUser": 1000}, {}, ["--user=1000"]),
    ({"runAsUser": 1000, "runAsGroup": 3000}, {}, ["--user=1000:3000"]),
    ({"runAsUser": 1000, "runAsGroup": 3000}, {"runAsUser": 2000}, ["--user=2000:3000"]),
    ({"runAsUser": 1000}, {"runAsUser": 0}, ["--user=0"]),
    ({}, {"runAsUser": 5, "runAsGroup": 0}, ["--user=5:0"]),
])
def test_user_and_group_container_over_pod(pod_sc, container_sc, expected):
    assert args(spec(pod_sc, **container_sc)) == expected


@pytest.mark.parametrize("image_user,expected", [
    ("", "--user=0:3000"), ("nobody", "--user=nobody:3000"), ("1000:1000", "--user=1000:3000")])
def test_run_as_group_alone_keeps_the_images_user(image_user, expected):
    s = spec({"runAsGroup": 3000})
    assert needs_image_user(s, s.containers[0])
    assert args(s, image_user) == [expected]


def test_fs_group_and_supplemental_groups_are_added_once_each():
    s = spec({"fsGroup": 2000, "supplementalGroups": [3000, 2000, 4000]})
    assert args(s) == ["--group-add=2000", "--group-add=3000", "--group-add=4000"]


def test_supplemental_groups_policy_strict_is_refused():
    with pytest.raises(InvalidSpecError, match="supplementalGroupsPolicy"):
        args(spec({"supplementalGroups": [5], "supplementalGroupsPolicy": "Strict"}))


@pytest.mark.parametrize("image_user,uid", [("", 0), ("0", 0), ("0:0", 0), ("1000", 1000), ("1000:50", 1000),
                                            ("nobody", None), ("app:app", None)])
def test_image_user_parsing(image_user, uid):
    assert parse_image_user(image_user)[0] == uid


@pytest.mark.parametrize("sc,image_user,message", [
    ({"runAsNonRoot": True}, "", 'container has runAsNonRoot and image will run as root (pod: "web_ns1(1234)", '
                                 'container: app)'),
    ({"runAsNonRoot": True}, "0:0", "image will run as root"),
    ({"runAsNonRoot": True}, "nobody", "container has runAsNonRoot and image has non-numeric user (nobody), "
                                       "cannot verify user is non-root"),
    ({"runAsNonRoot": True, "runAsUser": 0}, "1000", "container's runAsUser breaks non-root policy "
                                                    '(pod: "web_ns1(1234)", container: app)'),
])
def test_run_as_non_root_refuses_root_with_the_kubelets_message(sc, image_user, message):
    s = spec(**sc)
    with pytest.raises(InvalidSpecError) as err:
        args(s, image_user)
    assert message in str(err.value)
    assert err.value.reason == "CreateContainerConfigError" and err.value.retryable


@pytest.mark.parametrize("pod_sc,container_sc,image_user", [
    ({"runAsNonRoot": True}, {}, "1000"),
    ({"runAsNonRoot": True}, {"runAsUser": 1000}, ""),
    ({"runAsNonRoot": True, "runAsUser": 1000}, {}, ""),
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}, ""),   # the container's own field wins
    ({}, {"runAsNonRoot": False}, ""),
])
def test_run_as_non_root_admits_non_root(pod_sc, container_sc, image_user):
    s = spec(pod_sc, **container_sc)
    verify_run_as_non_root(s, s.containers[0], image_user, POD)


def test_the_image_user_is_looked_up_only_when_needed():
    for s in (spec(), spec({"runAsUser": 5, "runAsNonRoot": True}), spec(readOnlyRootFilesystem=True)):
        assert not needs_image_user(s, s.containers[0])
    s = spec({"runAsNonRoot": True})
    assert needs_image_user(s, s.containers[0])


@pytest.mark.parametrize("caps,expected", [
    ({"drop": ["ALL"]}, ["--cap-drop=all"]),
    ({"drop": ["all"], "add": ["NET_BIND_SERVICE"]}, ["--cap-drop=all", "--cap-add=CAP_NET_BIND_SERVICE"]),
    ({"drop": ["NET_RAW", "CAP_MKNOD"]}, ["--cap-drop=CAP_NET_RAW", "--cap-drop=CAP_MKNOD"]),
    ({"add": ["SYS_PTRACE", "sys_ptrace"]}, ["--cap-add=CAP_SYS_PTRACE"]),
    ({"add": ["NET_RAW"], "drop": ["NET_RAW"]}, ["--cap-drop=CAP_NET_RAW"]),  # drop wins, as containerd
])
def test_capabilities_are_deltas_of_the_default_set(caps, expected):
    assert args(spec(capabilities=caps)) == expected


@pytest.mark.parametrize("cap", ["SYS_ADMIN", "NET_ADMIN", "SYS_MODULE", "ALL", "CAP_BPF", "dac_read_search", "FOO"])
def test_capabilities_outside_the_sandbox_set_are_refused(cap):
    # The SandboxPod schema refuses them first; a spec that got past it is refused here too.
    s = spec()
    s.containers[0].securityContext = SecurityContext.model_validate({"capabilities": {"add": [cap]}})
    with pytest.raises(InvalidSpecError, match="capabilities.add: Forbidden"):
        args(s)


def test_read_only_root_filesystem_gets_no_writable_tmpfs():
    assert args(spec(readOnlyRootFilesystem=True)) == ["--read-only", "--read-only-tmpfs=false"]
    assert args(spec(readOnlyRootFilesystem=False)) == []


def test_allow_privilege_escalation_false_sets_no_new_privs():
    assert args(spec(allowPrivilegeEscalation=False)) == ["--security-opt=no-new-privileges"]
    assert args(spec(allowPrivilegeEscalation=True)) == []


@pytest.mark.parametrize("pod_sc,container_sc,field", [
    ({"seccompProfile": {"type": "Unconfined"}}, {}, "seccompProfile.type"),
    ({}, {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}, "seccompProfile.type"),
    ({}, {"appArmorProfile": {"type": "Unconfined"}}, "appArmorProfile.type"),
    ({"seLinuxOptions": {"level": "s0:c1"}}, {}, "seLinuxOptions"),
    ({}, {"windowsOptions": {"hostProcess": False}}, "windowsOptions"),
    ({}, {"procMount": "Unmasked"}, "procMount"),
    ({}, {"privileged": True}, "privileged"),
])
def test_weakening_fields_are_refused_not_dropped(pod_sc, container_sc, field):
    # pydantic takes them (the CRD's CEL rules refuse them); the builder must refuse them too.
    s = spec(pod_sc, **container_sc)
    with pytest.raises(InvalidSpecError, match=re.escape(f"securityContext.{field}: Forbidden")):
        args(s)


def test_runtime_default_profiles_pass():
    assert args(spec({"seccompProfile": {"type": "RuntimeDefault"}},
                     appArmorProfile={"type": "RuntimeDefault"}, procMount="Default")) == []


def test_container_seccomp_overrides_pod():
    s = spec({"seccompProfile": {"type": "Unconfined"}}, seccompProfile={"type": "RuntimeDefault"})
    assert args(s) == []


def test_safe_sysctls_are_set_and_others_refused():
    s = spec({"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
                          {"name": "kernel/shm_rmid_forced", "value": "1"}]})
    assert args(s) == ["--sysctl=net.ipv4.ip_local_port_range=1024 65000", "--sysctl=kernel.shm_rmid_forced=1"]
    s.securityContext.sysctls[0].name = "kernel.msgmax"
    with pytest.raises(InvalidSpecError, match=re.escape("sysctls[name=kernel.msgmax]: Forbidden")):
        args(s)


def test_host_users_false_is_refused():
    s = spec()
    s.hostUsers = False
    with pytest.raises(InvalidSpecError, match="hostUsers"):
        args(s)


def test_run_args_carry_the_security_options_as_single_elements():
    s = spec({"runAsUser": 1000, "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "--privileged"}]},
             readOnlyRootFilesystem=True)
    out = run_args(SandboxRef("ns1", "web", "1234"), s, s.containers[0], network="n", labels={}, new_pod=True)
    assert "--user=1000" in out and "--read-only" in out
    assert "--sysctl=net.ipv4.tcp_syncookies=--privileged" in out and "--privileged" not in out
    assert out.index("--user=1000") < out.index("localhost/img:1")


def test_containers_conf_pins_the_default_capabilities():
    listed = re.search(r"default_capabilities = \[([^\]]*)\]", CONTAINERS_CONF).group(1)
    assert tuple(re.findall(r'"([A-Z_]+)"', listed)) == DEFAULT_CAPABILITIES


def test_the_virtual_node_carries_security_contexts_to_the_sandbox_pod():
    from operators.models.sandboxpod import SandboxPodSpec
    from operators.virtualnode.mapping.spec import build_sandboxpod, dropped_fields
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
           "spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 2000, "runAsNonRoot": True,
                                        "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "0"}]},
                    "containers": [{"name": "app", "image": "localhost/img:1", "securityContext": {
                        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        "seccompProfile": {"type": "RuntimeDefault"}}}]}}
    sbp = build_sandboxpod(pod, namespace="t", cluster="c", cluster_uid="cu", env={})
    spec = SandboxPodSpec.model_validate(sbp["spec"])
    assert spec.to_wire()["securityContext"] == pod["spec"]["securityContext"]
    assert spec.to_wire()["containers"][0]["securityContext"] == pod["spec"]["containers"][0]["securityContext"]
    assert dropped_fields(pod) == []  # nothing of it goes unsaid
    out = security_args(spec, spec.containers[0], None, POD)
    assert out == ["--user=1000", "--group-add=2000", "--cap-drop=all", "--cap-add=CAP_NET_BIND_SERVICE",
                   "--security-opt=no-new-privileges", "--read-only", "--read-only-tmpfs=false",
                   "--sysctl=net.ipv4.tcp_syncookies=0"]


@pytest.mark.parametrize("value", ["8080,kernel.msgmax=1", 'a"b', "1\n2"])
def test_a_sysctl_value_podman_would_split_is_refused(value):
    s = spec({"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "1"}]})
    s.securityContext.sysctls[0].value = value
    with pytest.raises(InvalidSpecError, match=re.escape("sysctls[name=net.ipv4.ip_local_reserved_ports].value")):
        args(s)


def test_a_sysctl_value_with_spaces_passes_the_list_option_check():
    s = spec({"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]})
    out = run_args(SandboxRef("ns1", "web", "1234"), s, s.containers[0], network="n", labels={}, new_pod=True)
    assert "--sysctl=net.ipv4.tcp_rmem=4096 87380 6291456" in out


def test_the_tenant_apiserver_keeps_pod_security_admission_on():
    """PodSecurity is one of kube-apiserver's default admission plugins: nothing may turn it
    off, or `pod-security.kubernetes.io/enforce` labels would mean nothing (e2e checks them)."""
    from pathlib import Path
    from operators.serverlesscluster import controlplane as cp
    t = cp.Tenant(directory=Path("/x/p1"), ports=cp.TenantPorts(21000, 21001), etcd_url="https://127.0.0.1:2379",
                  etcd_prefix="/p1", name="c1", namespace="team", uid="u-1", sandbox_namespace="tenant-c1-u-1",
                  max_pods=7, cpu="4", memory="8Gi")
    args = cp.apiserver_args(Path("/bin"), t)
    assert not any(a.startswith("--disable-admission-plugins=") and "PodSecurity" in a for a in args)
    assert not any(a.startswith("--admission-control=") for a in args)  # the old flag replaces the defaults
    assert not any(a.startswith("--feature-gates=") and "PodSecurity=false" in a for a in args)


def test_a_security_context_field_of_a_newer_api_is_named_not_dropped_unseen():
    from operators.virtualnode.mapping.spec import dropped_fields
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
           "spec": {"securityContext": {"runAsUser": 1, "futureField": True},
                    "containers": [{"name": "app", "image": "i", "securityContext": {"futureKnob": "x",
                                                                                    "runAsUser": 2}}]}}
    assert dropped_fields(pod) == ["container app: securityContext.futureKnob", "securityContext.futureField"]
