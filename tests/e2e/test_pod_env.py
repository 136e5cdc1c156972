"""Container environments end to end, against upstream semantics: value, valueFrom (secretKeyRef,
configMapKeyRef, fieldRef, resourceFieldRef), envFrom with prefix, $(VAR) expansion, optional
references, and CreateContainerConfigError with the kubelet's messages."""
from __future__ import annotations

import time

import pytest
import yaml

from .conftest import IMAGE
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def envt(meta):
    t = make_cluster(meta, "envt", quotas={"maxPods": 10, "cpu": "8", "memory": "8Gi"})
    t.kubectl("create", "configmap", "app", "--from-literal=mode=fast", "--from-literal=level=3")
    t.kubectl("create", "secret", "generic", "db", "--from-literal=password=s3cret", "--from-literal=user=admin")
    yield t
    delete_cluster(meta, "envt")


def run_pod(t, name: str, env: list[dict], env_from: list[dict] | None = None, **container) -> None:
    c = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "env": env,
         "command": ["sh", "-c", "env | sort; echo end; sleep 3600"], **container}
    if env_from:
        c["envFrom"] = env_from
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "demo"}},
           "spec": {"containers": [c], "terminationGracePeriodSeconds": 1}}
    t.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))


def logs_with(t, name: str, needle: str, timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = t.kubectl("logs", name, check=False).stdout
        if needle in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"{name}: {needle!r} not in logs:\n{out}\n{t.kubectl('describe', 'pod', name).stdout}")


def env_of(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_every_source_with_expansion_and_precedence(envt):
    run_pod(envt, "all", env=[
        {"name": "MODE", "value": "overridden-by-env"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "level"}}},
        {"name": "DSN", "value": "$(DB_user):$(PASSWORD)@db/$(UNDEFINED)?x=$$(LEVEL)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "MISSING_OK", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        {"name": "KEY_OK", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "nokey", "optional": True}}},
    ], env_from=[{"configMapRef": {"name": "app"}}, {"prefix": "DB_", "secretRef": {"name": "db"}},
                 {"configMapRef": {"name": "absent", "optional": True}}],
        resources={"limits": {"memory": "64Mi", "cpu": "1"}, "requests": {"cpu": "250m"}})
    envt.wait_pod("all", lambda p: p["status"].get("phase") == "Running")
    env = env_of(logs_with(envt, "all", "end"))
    assert env["MODE"] == "overridden-by-env" and env["level"] == "3"  # envFrom first, env wins
    assert env["DB_password"] == "s3cret" and env["DB_user"] == "admin"
    assert env["PASSWORD"] == "s3cret" and env["LEVEL"] == "3"
    assert env["DSN"] == "admin:s3cret@db/$(UNDEFINED)?x=$(LEVEL)"
    assert env["POD_NAME"] == "all" and env["POD_NS"] == "default" and env["APP"] == "demo"
    assert env["NODE"] == envt.pod("all")["spec"]["nodeName"]
    pod = envt.pod("all")
    assert env["POD_IP"] == pod["status"]["podIP"] and env["HOST_IP"] == pod["status"]["hostIP"]
    assert env["MEM_MI"] == "64" and env["CPU_M"] == "250"
    assert "MISSING_OK" not in env and "KEY_OK" not in env


@pytest.mark.parametrize("name,env,message", [
    ("nosecret", [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}],
     'secret "absent" not found'),
    ("nokey", [{"name": "P", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "missing"}}}],
     "couldn't find key missing in ConfigMap default/app"),
    ("nosecretkey", [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "missing"}}}],
     "couldn't find key missing in Secret default/db"),
])
def test_missing_required_values_are_create_container_config_errors(envt, name, env, message):
    run_pod(envt, name, env=env)
    pod = envt.wait_pod(name, lambda p: any(
        (s.get("state") or {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"
        for s in p["status"].get("containerStatuses") or []), timeout=30)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == message
    assert pod["status"]["phase"] == "Pending"
    out = envt.kubectl("get", "pod", name).stdout
    assert "CreateContainerConfigError" in out  # what kubectl get shows in STATUS


def test_a_config_error_clears_once_the_secret_exists(envt):
    run_pod(envt, "later", env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}}])
    envt.wait_pod("later", lambda p: "CreateContainerConfigError" in str(p["status"].get("containerStatuses")))
    envt.kubectl("create", "secret", "generic", "token", "--from-literal=t=abc")
    envt.wait_pod("later", lambda p: p["status"].get("phase") == "Running", timeout=40)
    assert env_of(logs_with(envt, "later", "end"))["T"] == "abc"



def test_resource_field_refs_with_the_api_default_divisor(envt):
    """An unset divisor is stored by the apiserver as "0"; env and downward API files get what the
    kubelet gives for divisor 1: memory in bytes, cpu rounded up to whole cores."""
    def ref(resource: str, **divisor: str) -> dict:
        return {"resourceFieldRef": {"containerName": "main", "resource": resource, **divisor}}
    container = {
        "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "env | sort; echo FILES=$(cat /info/cpu),$(cat /info/mem); echo end; sleep 3600"],
        "env": [{"name": "MEM_ZERO", "valueFrom": ref("limits.memory", divisor="0")},
                {"name": "MEM_UNSET", "valueFrom": ref("limits.memory")},
                {"name": "CPU_ZERO", "valueFrom": ref("limits.cpu", divisor="0")},
                {"name": "REQ_CPU_UNSET", "valueFrom": ref("requests.cpu")}],
        "resources": {"limits": {"memory": "64Mi", "cpu": "1250m"}, "requests": {"cpu": "250m", "memory": "32Mi"}},
        "volumeMounts": [{"name": "info", "mountPath": "/info"}]}
    volume = {"name": "info", "downwardAPI": {"items": [
        {"path": "cpu", **ref("requests.cpu", divisor="0")}, {"path": "mem", **ref("requests.memory")}]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "divisor"},
           "spec": {"containers": [container], "volumes": [volume], "terminationGracePeriodSeconds": 1}}
    envt.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    stored = envt.pod("divisor")["spec"]
    assert stored["containers"][0]["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"  # API default
    assert stored["volumes"][0]["downwardAPI"]["items"][1]["resourceFieldRef"]["divisor"] == "0"
    envt.wait_pod("divisor", lambda p: p["status"].get("phase") == "Running")
    env = env_of(logs_with(envt, "divisor", "end"))
    assert env["MEM_ZERO"] == env["MEM_UNSET"] == str(64 * 2**20)
    assert env["CPU_ZERO"] == "2" and env["REQ_CPU_UNSET"] == "1"
    assert env["FILES"] == f"1,{32 * 2**20}"
