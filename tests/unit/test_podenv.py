"""Env values known only once the pod has its network (status.podIP, status.hostIP)."""
from __future__ import annotations

from operators.models.podspec import PodSpec
from operators.providers.sandbox import SandboxRef
from operators.providers.local import podenv
from operators.providers.local.spec import env_args

REF = SandboxRef("ns", "default.web", "uid-1")


def test_late_fields_become_literal_env_once_known():
    spec = PodSpec.model_validate({"containers": [{"name": "c", "image": "i", "env": [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "X", "value": "1"}]}]})
    c = spec.containers[0]
    assert podenv.late_fields(c) == {"status.podIP", "status.hostIP"}
    late = podenv.late_values("10.89.0.7", "10.89.0.1")
    assert late["status.podIPs"] == "10.89.0.7" and late["status.hostIPs"] == "10.89.0.1"
    assert env_args(c, REF, late) == ["--env=IP=10.89.0.7", "--env=HOST=10.89.0.1", "--env=NAME=default.web",
                                      "--env=X=1"]
    assert podenv.late_fields(PodSpec.model_validate({"containers": [{"name": "c", "image": "i"}]}).containers[0]) \
        == set()


def test_pod_create_args_match_what_run_would_create():
    spec = PodSpec.model_validate({"containers": [{"name": "c", "image": "i"}], "hostname": "web"})
    assert podenv.pod_create_args(REF, spec, network="net", dns=["--dns=10.0.0.2"]) == [
        "pod", "create", "--name=sk8s-uid-1", "--network=net", "--hostname=web", "--dns=10.0.0.2"]
    infra = {"NetworkSettings": {"Networks": {"net": {"IPAddress": "10.89.0.7", "Gateway": "10.89.0.1"}}}}
    assert podenv.infra_addresses(infra) == ("10.89.0.7", "10.89.0.1")
