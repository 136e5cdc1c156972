"""The aliyun tenant's admission policy and eci_unsupported judge the same pods alike.

eci_unsupported.py judges the SandboxPod the virtual node makes of a tenant pod (its env
resolved, its probes and hooks copied as the sandbox runs them); the policy
(operators/serverlesscluster/compatibility-aliyun.yaml) judges the tenant pod at admission.
Here every case of eci_admission_cases goes the virtual node's way into eci_unsupported; the
e2e test_aliyun_cluster.py::test_what_eci_cannot_express_is_refused_at_admission sends the
same cases to a real aliyun tenant's apiserver (no CEL evaluator is a test dependency), so a
case that one side refuses and the other admits fails one of them.
"""
from __future__ import annotations

import pytest
import yaml

from operators.models.sandboxpod import SandboxPodSpec
from operators.providers.aliyun.eci_unsupported import unsupported_fields
from operators.serverlesscluster.cluster import COMPATIBILITY_POLICY, PROVIDER_POLICIES, bootstrap_path
from operators.virtualnode.mapping.envresolve import resolve_env
from operators.virtualnode.mapping.spec import build_sandboxpod

from .eci_admission_cases import ACCEPTED, CONFIGMAPS, REFUSED


def eci_refusals(spec: dict) -> set[str]:
    """eci_unsupported's judgement of the SandboxPod the virtual node makes of this pod."""
    pod = {"metadata": {"namespace": "default", "name": "p", "uid": "u", "labels": {"app": "a"}}, "spec": spec}
    env = {c["name"]: resolve_env(pod, c, secrets={}, configmaps=CONFIGMAPS, node_name="virtual-node")[0]
           for c in spec["containers"] + spec.get("initContainers", [])}
    sbp = build_sandboxpod(pod, namespace="t", cluster="c", cluster_uid="u", env=env)
    return set(unsupported_fields(SandboxPodSpec.model_validate(sbp["spec"])))


@pytest.mark.parametrize("spec,fields", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_refused_case_is_what_eci_unsupported_refuses(spec, fields):
    assert eci_refusals(spec) == fields


@pytest.mark.parametrize("spec", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_each_accepted_case_is_one_eci_expresses(spec):
    assert eci_refusals(spec) == set()


def _policy() -> tuple[dict, dict]:
    (path,) = PROVIDER_POLICIES["aliyun"]
    policy, binding = yaml.safe_load_all(path.read_text())
    return policy, binding


def test_the_aliyun_policy_is_bootstrapped_for_aliyun_tenants_only():
    policy, binding = _policy()
    assert set(PROVIDER_POLICIES) == {"aliyun"}  # a local tenant gets compatibility.yaml alone
    assert bootstrap_path(policy) == \
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/sk8s-compatibility-aliyun"
    assert bootstrap_path(binding).endswith("/validatingadmissionpolicybindings/sk8s-compatibility-aliyun")
    assert binding["spec"] == {"policyName": "sk8s-compatibility-aliyun", "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_the_aliyun_policy_matches_what_the_compatibility_policy_matches():
    base = next(yaml.safe_load_all(COMPATIBILITY_POLICY.read_text()))
    policy, _ = _policy()
    assert policy["spec"]["matchConstraints"] == base["spec"]["matchConstraints"]
    # The pod spec is found where the compatibility policy finds it, for every kind.
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    base_variables = {v["name"]: v["expression"] for v in base["spec"]["variables"]}
    for name in ("kind", "path", "spec"):
        assert variables[name] == base_variables[name]

