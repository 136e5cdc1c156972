"""Service environment variables as the kubelet's envvars.FromServices and
getServiceEnvVarMap make them (the expected values are upstream's envvars_test.go), their
precedence and $(VAR) expansion, the SandboxPod field that carries them, and the provider's
`--env` arguments."""
import pytest

from operators.models.podspec import Container, PodSpec
from operators.providers.local.spec import env_args
from operators.providers.sandbox import SandboxRef
from operators.virtualnode.mapping.envresolve import ConfigError, resolve_env
from operators.virtualnode.mapping.serviceenv import service_env, service_env_of, service_vars
from operators.virtualnode.mapping.spec import build_sandboxpod


def svc(name, ip, ports, ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


UPSTREAM = [
    svc("foo-bar", "1.2.3.4", [{"port": 8080, "protocol": "TCP"}]),
    svc("abc-123", "5.6.7.8", [{"name": "u-d-p", "port": 8081, "protocol": "UDP"},
                               {"name": "t-c-p", "port": 8081, "protocol": "TCP"}]),
    svc("q-u-u-x", "9.8.7.6", [{"port": 8082, "protocol": "TCP"}, {"name": "8083", "port": 8083, "protocol": "TCP"}]),
    svc("svrc-clusterip-none", "None", [{"port": 8082, "protocol": "TCP"}]),
    svc("svrc-clusterip-empty", "", [{"port": 8082, "protocol": "TCP"}]),
    svc("super-ipv6", "2001:DB8::", [{"name": "u-d-p", "port": 8084, "protocol": "UDP"},
                                     {"name": "t-c-p", "port": 8084, "protocol": "TCP"}]),
    svc("sctp-1", "1.2.3.4", [{"port": 777, "protocol": "SCTP"}]),
]

EXPECTED = [
    ("FOO_BAR_SERVICE_HOST", "1.2.3.4"), ("FOO_BAR_SERVICE_PORT", "8080"), ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
    ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"), ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
    ("FOO_BAR_PORT_8080_TCP_PORT", "8080"), ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
    ("ABC_123_SERVICE_HOST", "5.6.7.8"), ("ABC_123_SERVICE_PORT", "8081"), ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
    ("ABC_123_SERVICE_PORT_T_C_P", "8081"), ("ABC_123_PORT", "udp://5.6.7.8:8081"),
    ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"), ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
    ("ABC_123_PORT_8081_UDP_PORT", "8081"), ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
    ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"), ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
    ("ABC_123_PORT_8081_TCP_PORT", "8081"), ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
    ("Q_U_U_X_SERVICE_HOST", "9.8.7.6"), ("Q_U_U_X_SERVICE_PORT", "8082"), ("Q_U_U_X_SERVICE_PORT_8083", "8083"),
    ("Q_U_U_X_PORT", "tcp://9.8.7.6:8082"), ("Q_U_U_X_PORT_8082_TCP", "tcp://9.8.7.6:8082"),
    ("Q_U_U_X_PORT_8082_TCP_PROTO", "tcp"), ("Q_U_U_X_PORT_8082_TCP_PORT", "8082"),
    ("Q_U_U_X_PORT_8082_TCP_ADDR", "9.8.7.6"), ("Q_U_U_X_PORT_8083_TCP", "tcp://9.8.7.6:8083"),
    ("Q_U_U_X_PORT_8083_TCP_PROTO", "tcp"), ("Q_U_U_X_PORT_8083_TCP_PORT", "8083"),
    ("Q_U_U_X_PORT_8083_TCP_ADDR", "9.8.7.6"),
    ("SUPER_IPV6_SERVICE_HOST", "2001:DB8::"), ("SUPER_IPV6_SERVICE_PORT", "8084"),
    ("SUPER_IPV6_SERVICE_PORT_U_D_P", "8084"), ("SUPER_IPV6_SERVICE_PORT_T_C_P", "8084"),
    ("SUPER_IPV6_PORT", "udp://[2001:DB8::]:8084"), ("SUPER_IPV6_PORT_8084_UDP", "udp://[2001:DB8::]:8084"),
    ("SUPER_IPV6_PORT_8084_UDP_PROTO", "udp"), ("SUPER_IPV6_PORT_8084_UDP_PORT", "8084"),
    ("SUPER_IPV6_PORT_8084_UDP_ADDR", "2001:DB8::"), ("SUPER_IPV6_PORT_8084_TCP", "tcp://[2001:DB8::]:8084"),
    ("SUPER_IPV6_PORT_8084_TCP_PROTO", "tcp"), ("SUPER_IPV6_PORT_8084_TCP_PORT", "8084"),
    ("SUPER_IPV6_PORT_8084_TCP_ADDR", "2001:DB8::"),
    ("SCTP_1_SERVICE_HOST", "1.2.3.4"), ("SCTP_1_SERVICE_PORT", "777"), ("SCTP_1_PORT", "sctp://1.2.3.4:777"),
    ("SCTP_1_PORT_777_SCTP", "sctp://1.2.3.4:777"), ("SCTP_1_PORT_777_SCTP_PROTO", "sctp"),
    ("SCTP_1_PORT_777_SCTP_PORT", "777"), ("SCTP_1_PORT_777_SCTP_ADDR", "1.2.3.4"),
]

KUBERNETES = svc("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])


def test_every_service_gives_upstreams_variables_in_upstreams_order():
    assert [v for s in UPSTREAM for v in service_vars(s)] == EXPECTED


def test_a_port_without_protocol_is_tcp_and_headless_or_external_name_services_give_none():
    assert service_vars(svc("a", "10.0.0.1", [{"port": 53}]))[2] == ("A_PORT", "tcp://10.0.0.1:53")
    assert service_vars(svc("h", "None", [{"port": 80}])) == []
    assert service_vars({"metadata": {"name": "x", "namespace": "d"},
                         "spec": {"type": "ExternalName", "externalName": "example.com"}}) == []


def test_the_kubernetes_service_always_and_the_namespaces_services_with_links():
    services = [KUBERNETES, svc("nginx-svc", "10.96.0.20", [{"port": 80}], ns="web"),
                svc("other", "10.96.0.30", [{"port": 80}], ns="elsewhere"),
                svc("headless", "None", [{"port": 80}], ns="web")]
    env = service_env(services, "web", None)  # unset: the apiserver's default, true
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert env["NGINX_SVC_SERVICE_HOST"] == "10.96.0.20"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)
    without = service_env(services, "web", False)
    assert without and all(k.startswith("KUBERNETES_") for k in without)


def test_a_namesake_of_the_kubernetes_service_never_replaces_it():
    services = [svc("kubernetes", "10.96.0.99", [{"port": 80}], ns="web"), KUBERNETES]
    assert service_env(services, "web", True)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_more_variables_than_a_sandboxpod_carries_are_refused_naming_enable_service_links():
    many = [svc(f"s{i}", "10.96.1.1", [{"port": 80}], ns="big") for i in range(1500)]
    pod = {"metadata": {"namespace": "big"}, "spec": {}}
    with pytest.raises(ConfigError, match="enableServiceLinks"):
        service_env_of(many, pod)
    assert len(service_env_of(many, {"metadata": {"namespace": "big"}, "spec": {"enableServiceLinks": False}})) == 0


def _pod(env=None, command=None):
    c = {"name": "app", "image": "busybox", "env": env or []}
    if command:
        c["command"] = command
    return {"metadata": {"name": "p", "namespace": "web", "uid": "u"}, "spec": {"containers": [c]}}


def test_expansion_sees_service_variables_and_the_containers_own_win():
    services = {"NGINX_SVC_SERVICE_HOST": "10.96.0.20", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    pod = _pod([{"name": "URL", "value": "http://$(NGINX_SVC_SERVICE_HOST)/"},
                {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"},
                {"name": "AFTER", "value": "$(KUBERNETES_SERVICE_HOST)"}],
               command=["sh", "-c", "echo $(NGINX_SVC_SERVICE_HOST) $(KUBERNETES_SERVICE_HOST)"])
    env, _ = resolve_env(pod, pod["spec"]["containers"][0], secrets={}, configmaps={}, node_name="n",
                         service_env=services)
    assert env == [{"name": "URL", "value": "http://10.96.0.20/"}, {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"},
                   {"name": "AFTER", "value": "mine"}]  # service variables are carried once, not per container
    spec = build_sandboxpod(pod, namespace="t", cluster="c", cluster_uid="cu", env={"app": env},
                            service_env=services)["spec"]
    assert spec["containers"][0]["command"] == ["sh", "-c", "echo 10.96.0.20 mine"]
    assert spec["serviceEnv"] == [{"name": "NGINX_SVC_SERVICE_HOST", "value": "10.96.0.20"},
                                  {"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"}]
    # The provider gives each container the service variables it does not define itself.
    model = PodSpec.model_validate(spec)
    args = env_args(model.containers[0], SandboxRef("t", "p", "u"), None, model.serviceEnv)
    assert args == ["--env=NGINX_SVC_SERVICE_HOST=10.96.0.20", "--env=URL=http://10.96.0.20/",
                    "--env=KUBERNETES_SERVICE_HOST=mine", "--env=AFTER=mine"]


def test_a_late_field_shadows_a_service_variable_of_the_same_name():
    pod = _pod([{"name": "X_SERVICE_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "Y", "value": "$(X_SERVICE_HOST)"}])
    env, _ = resolve_env(pod, pod["spec"]["containers"][0], secrets={}, configmaps={}, node_name="n",
                         service_env={"X_SERVICE_HOST": "10.96.0.5"})
    assert {"name": "Y", "value": "$(X_SERVICE_HOST)"} in env  # as before: the pod IP is not known yet
