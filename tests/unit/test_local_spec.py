"""`podman run` arguments built from a PodSpec (pure)."""
import json

import pytest

from operators.models.podspec import PodSpec
from operators.providers.errors import InvalidSpecError
from operators.providers.sandbox import SandboxRef
from operators.providers.local.spec import pull_policy, run_args

REF = SandboxRef("ns1", "web", "1234-abcd")


def spec(**container):
    base = {"name": "c", "image": "localhost/img:1"}
    base.update(container)
    return PodSpec.model_validate({"containers": [base], "restartPolicy": "OnFailure",
                                   "terminationGracePeriodSeconds": 3})


def test_first_container_creates_the_pod_on_the_network():
    s = spec()
    args = run_args(REF, s, s.containers[0], network="net1", labels={"a": "b"}, new_pod=True)
    assert "--pod=new:sk8s-1234-abcd" in args and "--network=net1" in args
    assert "--name=sk8s-1234-abcd-c" in args
    assert "--restart=no" in args and "--stop-timeout=3" in args
    assert {"--label=a=b", "--label=sk8s.io/uid=1234-abcd", "--label=sk8s.io/container=c"} <= set(args)
    assert args[-1] == "localhost/img:1"


def test_later_containers_join_the_pod():
    s = spec()
    args = run_args(REF, s, s.containers[0], network="net1", labels={}, new_pod=False)
    assert "--pod=sk8s-1234-abcd" in args and not any(a.startswith("--network") for a in args)


def test_command_replaces_entrypoint_and_args_follow_image():
    s = spec(command=["sh", "-c"], args=["echo hi"])
    args = run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True)
    assert f"--entrypoint={json.dumps(['sh', '-c'])}" in args
    assert args[-2:] == ["localhost/img:1", "echo hi"]


def test_resources_become_cgroup_limits():
    s = spec(resources={"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}})
    args = run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True)
    assert "--memory=67108864" in args and "--cpus=0.500" in args and "--cpu-shares=256" in args


def test_env_values_and_field_refs():
    s = spec(env=[{"name": "A", "value": "1"},
                  {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    args = run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True)
    assert "--env=A=1" in args and "--env=POD=web" in args


def test_unsupported_env_source_is_a_config_error():
    s = spec(env=[{"name": "S", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}])
    with pytest.raises(InvalidSpecError) as err:
        run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True)
    assert err.value.reason == "CreateContainerConfigError"


@pytest.mark.parametrize("image,policy", [("nginx", "Always"), ("nginx:latest", "Always"),
                                          ("nginx:1.25", "IfNotPresent"), ("r:5000/x/y:2", "IfNotPresent"),
                                          ("r:5000/x/y", "Always"), ("x@sha256:" + "ab" * 32, "IfNotPresent")])
def test_pull_policy_defaults_like_the_apiserver(image, policy):
    assert pull_policy(spec(image=image).containers[0]) == policy


def test_a_restarted_containers_previous_run_keeps_a_name_of_its_own():
    from operators.providers.local.spec import container_name, previous_container_name
    assert previous_container_name(REF, "c") == container_name(REF, "c") + "--previous"


def test_an_image_pulled_to_read_its_user_is_not_pulled_again():
    s = spec(imagePullPolicy="Always", securityContext={"runAsNonRoot": True, "runAsUser": 1000})
    assert "--pull=newer" in run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True)
    args = run_args(REF, s, s.containers[0], network="n", labels={}, new_pod=True, image_user="1000")
    assert "--pull=missing" in args and "--pull=newer" not in args
