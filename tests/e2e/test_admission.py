"""Invalid SandboxPods are rejected by the real apiserver (schema + CEL), naming the field."""
from __future__ import annotations

import copy

import pytest

from .conftest import IMAGE, sandboxpod

pytestmark = pytest.mark.e2e

GOOD = sandboxpod("x", [{"name": "main", "command": ["sleep", "1"]}])


def mutate(fn):
    obj = copy.deepcopy(GOOD)
    fn(obj)
    return obj


def c0(obj):
    return obj["spec"]["containers"][0]


CASES = [
    ("no-spec", lambda o: o.pop("spec"), "spec: Required value"),
    ("no-containers", lambda o: o["spec"].pop("containers"), "spec.containers: Required value"),
    ("empty-containers", lambda o: o["spec"].update(containers=[]), "spec.containers: Invalid value"),
    ("no-image", lambda o: c0(o).pop("image"), "spec.containers[0].image: Required value"),
    ("bad-name", lambda o: c0(o).update(name="Web_1"), "spec.containers[0].name: Invalid value"),
    ("dup-names", lambda o: o["spec"]["containers"].append(dict(c0(o))), "container names must be unique"),
    ("bad-restart", lambda o: o["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy: Unsupported value"),
    ("bad-port", lambda o: c0(o).update(ports=[{"containerPort": 70000}]),
     "spec.containers[0].ports[0].containerPort: Invalid value"),
    ("bad-protocol", lambda o: c0(o).update(ports=[{"containerPort": 80, "protocol": "HTTP"}]),
     "spec.containers[0].ports[0].protocol: Unsupported value"),
    ("bad-memory", lambda o: c0(o).update(resources={"limits": {"memory": "lots"}}),
     "spec.containers[0].resources.limits.memory: Invalid value"),
    ("bad-env-name", lambda o: c0(o).update(env=[{"name": "BAD=NAME", "value": "v"}]),
     "spec.containers[0].env[0].name: Invalid value"),
    ("env-two-sources", lambda o: c0(o).update(env=[{"name": "A", "value": "v", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]), "value and valueFrom are mutually exclusive"),
    ("bad-pull-policy", lambda o: c0(o).update(imagePullPolicy="Sometimes"),
     "spec.containers[0].imagePullPolicy: Unsupported value"),
    ("negative-grace", lambda o: o["spec"].update(terminationGracePeriodSeconds=-1),
     "spec.terminationGracePeriodSeconds: Invalid value"),
    ("image-with-space", lambda o: c0(o).update(image="bad image"), "spec.containers[0].image: Invalid value"),
    ("bad-provider", lambda o: o["spec"].update(provider="gcp"), "spec.provider: Unsupported value"),
]


@pytest.mark.parametrize("case,fn,message", CASES, ids=[c[0] for c in CASES])
def test_invalid_sandboxpod_is_rejected_naming_the_field(meta, namespace, case, fn, message):
    proc = meta.apply(mutate(fn), namespace, check=False)
    assert proc.returncode != 0, f"{case} was accepted"
    assert message in proc.stderr, proc.stderr
    assert meta.get("sandboxpod", "x", namespace) is None  # nothing was stored


def test_spec_is_immutable(meta, namespace):
    meta.apply(GOOD, namespace)
    changed = copy.deepcopy(GOOD)
    changed["spec"]["containers"][0]["image"] = IMAGE.replace("latest", "v2")
    proc = meta.apply(changed, namespace, check=False)
    assert proc.returncode != 0 and "spec is immutable" in proc.stderr, proc.stderr
