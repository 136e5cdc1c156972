"""A PrivateZone operator whose provider cannot be made runs on and says so in each zone's status
(found on kind: the default manifests' aliyun provider without an account crash-looped it)."""
from __future__ import annotations

import asyncio

import kopf
import pytest

from operators.privatezone.handlers import handle_delete_zone, handle_ensure_zone, handle_startup


def test_startup_without_a_provider_keeps_the_operator_up(monkeypatch):
    async def served(plural):
        return None
    monkeypatch.setattr(handle_startup.kube, "wait_until_served", served)
    monkeypatch.setattr(handle_startup.kopfresync, "start", lambda *a, **k: None)
    monkeypatch.setenv("SK8S_PROVIDER", "metapod")
    memo = kopf.Memo()
    asyncio.run(handle_startup.start(kopf.OperatorSettings(), memo))
    assert memo.zones is None and "metapod" in memo.zones_unavailable

    patch = kopf.Patch()
    body = {"metadata": {"name": "z", "namespace": "t", "uid": "u", "generation": 2}, "spec": {}}
    monkeypatch.setattr(handle_ensure_zone.kopf, "warn", lambda *a, **k: None)
    with pytest.raises(kopf.TemporaryError):
        asyncio.run(handle_ensure_zone.ensure_zone(body, body["spec"], {}, body["metadata"], patch, memo))
    cond = patch.status["conditions"][0]
    assert patch.status["phase"] == "Failed" and cond["status"] == "False"
    assert cond["reason"] == "ProviderUnavailable" and "metapod" in cond["message"]
    with pytest.raises(kopf.TemporaryError):  # the finalizer stays: nothing is known removed
        asyncio.run(handle_delete_zone.delete_zone(body["metadata"], memo))
