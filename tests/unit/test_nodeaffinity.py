"""Required node affinity as component-helpers' nodeaffinity evaluates it."""
import pytest

from operators.virtualnode.mapping.nodeaffinity import MISMATCH, node_mismatch, requirement_matches

NODE = {"metadata": {"name": "vn", "labels": {"kubernetes.io/os": "linux", "tier": "3", "type": "virtual-kubelet"}}}


def with_terms(*terms):
    return {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}}


def expr(key, op, *values):
    return {"matchExpressions": [{"key": key, "operator": op, **({"values": list(values)} if values else {})}]}


@pytest.mark.parametrize("req,ok", [
    ({"key": "tier", "operator": "In", "values": ["3", "4"]}, True),
    ({"key": "tier", "operator": "In", "values": ["4"]}, False),
    ({"key": "tier", "operator": "NotIn", "values": ["4"]}, True),
    ({"key": "absent", "operator": "NotIn", "values": ["4"]}, True),
    ({"key": "tier", "operator": "Exists"}, True),
    ({"key": "absent", "operator": "Exists"}, False),
    ({"key": "absent", "operator": "DoesNotExist"}, True),
    ({"key": "tier", "operator": "Gt", "values": ["2"]}, True),
    ({"key": "tier", "operator": "Lt", "values": ["2"]}, False),
    ({"key": "kubernetes.io/os", "operator": "Gt", "values": ["2"]}, False),  # not a number
    ({"key": "tier", "operator": "Gt", "values": ["1", "2"]}, False),  # Gt takes exactly one value
    ({"key": "tier", "operator": "Bogus", "values": ["3"]}, False),
])
def test_requirements(req, ok):
    assert requirement_matches(req, NODE["metadata"]["labels"]) is ok


def test_terms_are_ored_and_requirements_anded():
    both = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["3"]},
                                 {"key": "absent", "operator": "Exists"}]}
    assert node_mismatch(with_terms(both), NODE) == MISMATCH
    assert node_mismatch(with_terms(both, expr("type", "In", "virtual-kubelet")), NODE) is None


def test_an_empty_term_or_no_terms_match_no_node():
    assert node_mismatch(with_terms({}), NODE) == MISMATCH
    assert node_mismatch(with_terms(), NODE) == MISMATCH


def test_match_fields_know_only_the_node_name():
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["vn"]}]}
    assert node_mismatch(with_terms(by_name), NODE) is None
    other = {"matchFields": [{"key": "metadata.namespace", "operator": "In", "values": ["vn"]}]}
    assert node_mismatch(with_terms(other), NODE) == MISMATCH


def test_node_selector_and_affinity_both_apply():
    pod = with_terms(expr("type", "Exists"))
    pod["spec"]["nodeSelector"] = {"kubernetes.io/os": "windows"}
    assert node_mismatch(pod, NODE) == MISMATCH
    pod["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    assert node_mismatch(pod, NODE) is None


def test_preferred_affinity_is_only_a_preference():
    pod = {"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": expr("absent", "Exists")}]}}}}
    assert node_mismatch(pod, NODE) is None
