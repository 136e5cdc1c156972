"""The grace period a SandboxPod's sandbox gets on deletion."""
from operators.models.contracts import ANNOTATION_DELETION_GRACE as GRACE_ANNOTATION
from operators.sandboxpod.handlers.handle_delete_sandboxpod import grace_period


def body(grace=None, annotation=None):
    meta = {"name": "p", "namespace": "n", "uid": "u"}
    if annotation is not None:
        meta["annotations"] = {GRACE_ANNOTATION: annotation}
    spec = {"containers": []}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": meta, "spec": spec}


def test_spec_grace_period_or_the_kubernetes_default():
    assert grace_period(body(5)) == 5
    assert grace_period(body(0)) == 0
    assert grace_period(body()) == 30


def test_a_tenant_pods_explicit_grace_wins():
    assert grace_period(body(30, "4")) == 4
    assert grace_period(body(30, "0")) == 0


def test_a_malformed_annotation_is_ignored():
    assert grace_period(body(7, "soon")) == 7
