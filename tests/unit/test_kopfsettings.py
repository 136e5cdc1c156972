"""The digest diff base keeps an object of any size patchable (its finalizer removable)."""
from __future__ import annotations

import re

import kopf

from operators.kopfsettings import DIFFBASE_KEY, DigestDiffBaseStorage, configure
from operators.models.base import NONNEGATIVE_QUANTITY_PATTERN, QUANTITY_PATTERN


def _body(env_value: str, label: str = "a") -> kopf.Body:
    return kopf.Body({
        "apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod",
        "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"l": label},
                     "annotations": {"big": env_value}},
        "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "E", "value": env_value}]}]},
    })


def test_digest_stays_small_whatever_the_spec_size():
    storage = DigestDiffBaseStorage(prefix="sk8s.io", key=DIFFBASE_KEY)
    big = storage.build(body=_body("x" * 1_000_000))
    small = storage.build(body=_body("x"))
    assert len(str(big)) < 200 and len(str(small)) < 200
    assert big != small


def test_digest_changes_with_labels_and_spec_but_not_status():
    storage = DigestDiffBaseStorage(prefix="sk8s.io", key=DIFFBASE_KEY)
    base = storage.build(body=_body("v"))
    assert storage.build(body=_body("v", label="b")) != base
    with_status = dict(_body("v"))
    with_status["status"] = {"phase": "Running"}
    assert storage.build(body=kopf.Body(with_status)) == base


def test_stored_annotation_round_trips():
    storage = DigestDiffBaseStorage(prefix="sk8s.io", key=DIFFBASE_KEY)
    body = _body("x" * 300_000)
    essence = storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    (value,) = [v for k, v in patch["metadata"]["annotations"].items() if DIFFBASE_KEY in k]
    assert len(value) < 200
    stored = dict(body)
    stored["metadata"] = dict(body["metadata"], annotations={**body["metadata"]["annotations"],
                                                              **patch["metadata"]["annotations"]})
    assert storage.fetch(body=kopf.Body(stored)) == essence


def test_configure_picks_the_storage():
    settings = kopf.OperatorSettings()
    configure(settings, finalizer="sk8s.io/x", max_workers=1, digest_diffbase=True)
    assert isinstance(settings.persistence.diffbase_storage, DigestDiffBaseStorage)
    configure(settings, finalizer="sk8s.io/x", max_workers=1)
    assert not isinstance(settings.persistence.diffbase_storage, DigestDiffBaseStorage)


def test_nonnegative_quantities():
    for ok in ("16", "500m", "64Gi", "1e3", "0", ".5"):
        assert re.match(NONNEGATIVE_QUANTITY_PATTERN, ok), ok
    for bad in ("-5", "+5", "-1Gi", "five", ""):
        assert not re.match(NONNEGATIVE_QUANTITY_PATTERN, bad), bad
    assert re.match(QUANTITY_PATTERN, "-5")


def test_an_unexpected_error_is_retried_in_seconds_not_kopfs_minute():
    settings = kopf.OperatorSettings()
    assert settings.execution.default_backoff == 60  # kopf's own, which stalled pods for a minute
    configure(settings, finalizer="sk8s.io/x", max_workers=1)
    assert settings.execution.default_backoff <= 5
